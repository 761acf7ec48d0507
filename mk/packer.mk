.PHONY: bench-packer
bench-packer: install ## CP-SAT packing vs the greedy default (paper-style scenarios; ~15-30 min on 2 cores)
	$(RUN) python -m benchmarks.bench_packer
