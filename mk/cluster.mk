# The local control plane (scheduler_extender/devcluster), the demo, e2e benchmarks and kind.

DEMO_DIR ?= .cluster/demo
DEV_CLUSTER_DIR ?= .cluster/dev
DEMO_NODES ?= 16
DEMO_FLAGS ?=  # e.g. --short (a 4-minute day) or --headless
KIND ?= kind
KIND_CLUSTER ?= scheduler-extender
KIND_NODE_IMAGE ?=
KIND_NODES ?= 16
KIND_KUBECONFIG ?= .cluster/kind/kubeconfig
KIND_KUBECTL = $(RUN) kubectl --kubeconfig $(KIND_KUBECONFIG)
KIND_IMAGE ?= $(IMAGE)

.PHONY: demo
demo: install tools ## START HERE: the whole loop on fake GPU nodes: live traffic, Prometheus, forecast, autoscaler, packer rescue, dashboards (Ctrl-C stops)
	$(RUN) scheduler-extender dev-cluster --run-dir $(DEMO_DIR) --nodes $(DEMO_NODES) --demo $(DEMO_FLAGS)

.PHONY: dev-cluster
dev-cluster: install tools ## control plane with fake GPU nodes and the extender, no workload (Ctrl-C stops)
	$(RUN) scheduler-extender dev-cluster --run-dir $(DEV_CLUSTER_DIR) --nodes $(DEMO_NODES)

.PHONY: e2e
e2e: install tools ## the e2e tests only (real control plane, ~2 min)
	$(PYTEST) tests/e2e

.PHONY: bench-e2e
bench-e2e: install tools ## 1000 fake nodes, 2000 GPU pods: kube-scheduler alone vs with the extender -> BENCHMARKS.md
	$(RUN) python -m benchmarks.bench_e2e

.PHONY: bench-trace
bench-trace: install tools ## replay the Alibaba GPU trace (../shared/data/openb): allocation, fragmentation -> BENCHMARKS.md
	$(RUN) python -m benchmarks.bench_trace $(BENCH_TRACE_ARGS)

.PHONY: bench-trace-offline
bench-trace-offline: install ## the same replay in a minute: kube-scheduler's default scores modelled, the extender's own scoring -> BENCHMARKS.md
	$(RUN) python -m benchmarks.trace_offline $(BENCH_TRACE_ARGS)

.PHONY: kind-up
kind-up: install tools image ## kind cluster (needs Docker): kwok, fake GPU nodes and the Helm chart (kube-scheduler pods with the extender beside them)
	@command -v $(KIND) >/dev/null 2>&1 || { echo "error: kind is not on PATH (go install sigs.k8s.io/kind@latest); it needs Docker" >&2; exit 1; }
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	$(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --kubeconfig $(KIND_KUBECONFIG) $(if $(KIND_NODE_IMAGE),--image $(KIND_NODE_IMAGE))
	$(KIND) load docker-image $(KIND_IMAGE) --name $(KIND_CLUSTER)
	$(KIND_KUBECTL) -n kube-system create configmap kwok-stages --from-file=stages.yaml=deploy/kwok/stages.yaml --dry-run=client -o yaml | $(KIND_KUBECTL) apply -f -
	$(KIND_KUBECTL) apply -f deploy/kwok/kwok-controller.yaml
	$(KIND_KUBECTL) -n kube-system rollout status deployment/kwok-controller --timeout=180s
	$(HELM) upgrade --install scheduler-extender $(CHART_DIR) --kubeconfig $(KIND_KUBECONFIG) \
	  --namespace scheduler-extender --create-namespace --wait --timeout 5m \
	  --set image.repository=$(firstword $(subst :, ,$(KIND_IMAGE))) --set image.tag=$(lastword $(subst :, ,$(KIND_IMAGE)))
	$(RUN) scheduler-extender fake-nodes --kubeconfig $(KIND_KUBECONFIG) --count $(KIND_NODES)
	@echo "kind cluster $(KIND_CLUSTER) is up: export KUBECONFIG=$(KIND_KUBECONFIG); pods opt in with schedulerName gpu-scheduler"
	@echo "the extender runs beside kube-scheduler: kubectl -n scheduler-extender logs deploy/scheduler-extender-scheduler -c extender"

.PHONY: kind-down
kind-down: ## delete the kind cluster of kind-up
	$(KIND) delete cluster --name $(KIND_CLUSTER)
