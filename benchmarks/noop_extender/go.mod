module scheduler-extender/benchmarks/noop_extender

go 1.22
