.PHONY: bench-packer
bench-packer: install ## CP-SAT packing vs the greedy default (paper-style scenarios; ~1.5 h on 2 cores)
	$(RUN) python -m benchmarks.bench_packer
