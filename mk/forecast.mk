# Popularity forecast and popularity-aware placement (benchmarks write BENCHMARKS.md).

.PHONY: bench-forecast
bench-forecast: install ## forecast MASE, pinball loss, coverage and time per agent on 66 synthetic agents
	$(RUN) python -m benchmarks.bench_forecast

.PHONY: bench-statsforecast
bench-statsforecast: install ## the numpy forecaster against statsforecast's models (the bench dependency group)
	$(RUN) --group bench python -m benchmarks.bench_statsforecast

.PHONY: bench-placement
bench-placement: install ## p99 latency of popularity-aware placement vs least-allocated (simulated)
	$(RUN) python -m benchmarks.bench_placement
