# The predictive replica controller (AgentAutoscaler): benchmark and focused tests.

.PHONY: bench-autoscale
bench-autoscale: install ## trace-driven simulation, predictive autoscaler vs HPA-equivalent (10-15 min on 2 cores) -> BENCHMARKS.md
	$(RUN) python -m benchmarks.bench_autoscale

.PHONY: test-autoscale
test-autoscale: install ## the autoscaler's unit tests and its e2e test (real control plane + Prometheus)
	$(PYTEST) tests/unit/domain/test_replicas.py tests/unit/adapters/autoscaler tests/unit/service/test_autoscaler.py tests/e2e/test_autoscaler.py
