"""The local Kubernetes control plane for e2e tests, ``make demo`` and ``make bench-e2e``.

Real components as processes on 127.0.0.1, no containers:

- ``tools``: finds the binaries ``make tools`` built (versions pinned by hack/tools/*/go.mod);
- ``pki``: the CA, serving and admin certificates (``cryptography``);
- ``processes``: one process group per component, logs on disk, no orphans;
- ``schedconfig``: the local kube-scheduler configuration, from deploy/scheduler-config.yaml;
- ``cluster``: ``LocalCluster``, the context manager that runs it all;
- ``nodes``: fake GPU nodes from deploy/kwok/ (for any cluster running kwok);
- ``workload``: synthetic agent pods and Deployments with skewed popularity;
- ``prometheus``: a synthetic agent-traffic exporter and a real Prometheus (backfilled history);
- ``controller``: the AgentAutoscaler controller (``scheduler-extender controller``) as a process;
- ``demo``: ``make demo``'s scenario (traffic, Prometheus, forecast, autoscaler, packer rescue);
- ``dashboards``: the chart's Grafana dashboards drawn to PNG from a Prometheus (matplotlib).

Only ``pki`` and ``cluster`` need ``cryptography``, and ``dashboards`` ``matplotlib``
(development dependencies);
the service's own layers never import this package (an import-linter contract).
"""
