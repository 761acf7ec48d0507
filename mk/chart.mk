# Helm chart, container image and dashboards (helm/scheduler-extender, Dockerfile).

CHART_DIR := helm/scheduler-extender
IMAGE ?= scheduler-extender:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# docker, podman or buildah, whichever is installed (CI machines have none: the image is not built there).
CONTAINER_ENGINE ?= $(firstword $(foreach e,docker podman buildah,$(if $(shell command -v $(e) 2>/dev/null),$(e))))
# helm as `make tools` built it (the version pinned by hack/tools/helm/go.mod).
HELM ?= $(shell $(RUN) python -c 'from scheduler_extender.devcluster.tools import tool_dirs; print(tool_dirs()["helm"][1] / "helm")')
PROMETHEUS_URL ?= http://127.0.0.1:9090
DASHBOARDS_DIR ?= build/dashboards

.PHONY: image
image: ## build the container image $(IMAGE) with docker, podman or buildah
	@test -n "$(CONTAINER_ENGINE)" || { echo "error: no docker, podman or buildah on PATH to build $(IMAGE)" >&2; exit 1; }
	$(CONTAINER_ENGINE) $(if $(filter buildah,$(CONTAINER_ENGINE)),bud,build) -t $(IMAGE) .

.PHONY: chart-lint
chart-lint: install ## helm lint --strict (default and ci/ values) and the chart's offline tests (schema, RBAC, alerts, dashboards)
	@test -x "$(HELM)" || { echo "error: helm not found at '$(HELM)': run 'make tools'" >&2; exit 1; }
	$(HELM) lint --strict $(CHART_DIR)
	@for values in $(CHART_DIR)/ci/*-values.yaml; do echo "$(HELM) lint --strict -f $$values"; $(HELM) lint --strict $(CHART_DIR) -f $$values || exit 1; done
	$(PYTEST) tests/unit/chart

.PHONY: dashboards
dashboards: install ## every Grafana dashboard of the chart as PNG from PROMETHEUS_URL (default 127.0.0.1:9090) into DASHBOARDS_DIR
	$(RUN) scheduler-extender dashboards --prometheus $(PROMETHEUS_URL) --out-dir $(DASHBOARDS_DIR)

.PHONY: chart-schema
chart-schema: install ## regenerate the settings maps of the chart's values.schema.json from config.py
	$(RUN) python -m scheduler_extender.devcluster.chart_schema
