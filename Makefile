# scheduler-extender: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= uv
RUN := $(UV) run --frozen
PYTEST := $(RUN) pytest

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

.PHONY: uv
uv:
	@command -v $(UV) >/dev/null 2>&1 || { echo "installing uv (the lock-file installer) with pip"; python3 -m pip install --quiet 'uv>=0.5'; }

.PHONY: install
install: uv ## create .venv with the locked dependencies and the project
	$(UV) sync --frozen

.PHONY: lint
lint: install ## ruff (lint and format check) and the import-layer contracts
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports

.PHONY: typecheck
typecheck: install ## mypy --strict on the package
	$(RUN) mypy

.PHONY: unit
unit: install unit-tools ## unit tests (no cluster, no Prometheus server; helm and promtool check the chart)
	$(PYTEST) tests/unit

.PHONY: integration
integration: install tools ## integration tests against a real Prometheus (built by `make tools`)
	$(PYTEST) tests/integration

.PHONY: tools
tools: ## build the pinned tools (control plane, helm, prometheus, promtool) into ~/.cache/scheduler-extender (slow the first time)
	bash hack/build-tools.sh

.PHONY: unit-tools
unit-tools: ## build only what the unit tests run: helm and promtool (a few minutes the first time)
	bash hack/build-tools.sh helm prometheus

.PHONY: test
test: lint typecheck tools ## everything: lint, types, unit, integration and e2e tests (not the soak)
	$(PYTEST) tests -m "not soak"

include $(wildcard mk/*.mk)
