"""300 GPU pods onto 60 fake nodes through the extender."""

from __future__ import annotations

import pytest
from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import (
    NodePool,
    bound,
    events_for,
    extender_decisions,
    list_pods,
    overallocated,
    wait_for,
)

NODES = 60
FITTING = 300
TOO_BIG = 4  # pods asking for more GPUs than any node has


@pytest.mark.slow
def test_every_pod_that_fits_is_bound_without_overallocation(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    node_pool.add(NODES, gpus="mix")
    assert node_pool.gpus >= FITTING  # every 1-GPU pod fits
    before = extender_decisions(cluster.extender_endpoint.metrics_url)

    pods = [
        node_pool.pod(f"gpu-{i:03d}", namespace=namespace, agent=f"agent-{i % 12}")
        for i in range(FITTING)
    ] + [node_pool.pod(f"huge-{i}", namespace=namespace, gpus=16) for i in range(TOO_BIG)]
    workload.create_pods(api, pods)

    wait_for(
        f"{FITTING} pods bound",
        lambda: len(bound(list_pods(api, namespace))) >= FITTING,
        timeout=240,
        interval=1.0,
    )
    after = extender_decisions(cluster.extender_endpoint.metrics_url)
    placed = bound(list_pods(api, namespace))
    assert sorted(p["metadata"]["name"] for p in placed) == [f"gpu-{i:03d}" for i in range(FITTING)]
    assert {p["spec"]["nodeName"] for p in placed} <= set(node_pool.node_names)
    assert overallocated(api) == {}
    assert after[("bind", "bound")] - before[("bind", "bound")] == FITTING
    assert after[("bind", "error")] == before[("bind", "error")]
    # The pods no node can take are reported, not bound anywhere.
    for i in range(TOO_BIG):
        wait_for(
            f"a FailedScheduling event for huge-{i}",
            lambda i=i: (
                "FailedScheduling" in {e["reason"] for e in events_for(api, namespace, f"huge-{i}")}
            ),
            timeout=60,
        )
