"""The local Kubernetes control plane for e2e tests, ``make demo`` and ``make bench-e2e``.

Real components as processes on 127.0.0.1, no containers:

- ``tools``: finds the binaries ``make tools`` built (versions pinned by hack/tools/*/go.mod);
- ``pki``: the CA, serving and admin certificates (``cryptography``);
- ``processes``: one process group per component, logs on disk, no orphans;
- ``schedconfig``: the local kube-scheduler configuration, from deploy/scheduler-config.yaml;
- ``cluster``: ``LocalCluster``, the context manager that runs it all;
- ``nodes``: fake GPU nodes from deploy/kwok/ (for any cluster running kwok);
- ``workload``: synthetic agent pods and Deployments with skewed popularity.

Only ``pki`` and ``cluster`` need ``cryptography`` (a development dependency);
the service's own layers never import this package (an import-linter contract).
"""
