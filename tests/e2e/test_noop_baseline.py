"""The no-op Go extender that ``make bench-e2e`` measures as its floor really serves the verbs.

With ``ignorable: false`` kube-scheduler cannot go around it: the pods are
bound only if its filter, prioritize and bind all answer correctly.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from benchmarks.bench_e2e import build_noop_extender, start_noop_extender
from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import NodePool, bound, list_pods, wait_for

PODS = 3


def test_noop_extender_binds_every_pod(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    tmp_path: Path,
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(2, gpus=4)
    start_noop_extender(cluster, build_noop_extender(tmp_path))
    cluster.start_scheduler(extender=True, ignorable=False)

    workload.create_pods(api, [node_pool.pod(f"gpu-{i}", namespace=namespace) for i in range(PODS)])

    wait_for(
        f"{PODS} pods bound through the no-op extender",
        lambda: len(bound(list_pods(api, namespace))) == PODS,
        timeout=60,
    )
    log = cluster.logs["extender"].read_text()
    assert "no-op extender serving" in log, log[-2000:]
