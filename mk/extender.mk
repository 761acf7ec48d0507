.PHONY: bench-extender
bench-extender: install ## filter+prioritize latency through uvicorn with 5000 nodes / 20000 pods
	$(RUN) python -m benchmarks.bench_extender
