.PHONY: bench-extender
bench-extender: install ## filter+prioritize latency through uvicorn with 5000 nodes / 20000 pods (BENCH_EXTENDER_ARGS=--claims: pods with DRA claims)
	$(RUN) python -m benchmarks.bench_extender $(BENCH_EXTENDER_ARGS)

.PHONY: bench-cycle
bench-cycle: install ## the extender's CPU per scheduling cycle in process (bench-e2e's cluster, no control plane)
	$(RUN) python -m benchmarks.bench_cycle
