.PHONY: reliability
reliability: install tools ## long fault, load, fuzzing and soak scenarios -> RELIABILITY.md (RUNS=3)
	$(RUN) python -m benchmarks.reliability
