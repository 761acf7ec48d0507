"""kube-scheduler schedules GPU pods of our profile through the extender."""

from __future__ import annotations

from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import (
    NodePool,
    bound,
    extender_decisions,
    list_pods,
    overallocated,
    verb_total,
    wait_for,
)

PODS = 12


def test_gpu_pods_go_through_filter_prioritize_and_bind(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    node_pool.add(4, gpus=4)  # 16 GPUs: every pod has a choice of at least two nodes
    before = extender_decisions(cluster.extender_endpoint.metrics_url)

    workload.create_pods(
        api,
        [
            node_pool.pod(f"gpu-{i}", namespace=namespace, agent=f"agent-{i % 3}")
            for i in range(PODS)
        ],
    )
    placed = wait_for(
        f"{PODS} pods bound",
        lambda: len(pods := bound(list_pods(api, namespace))) == PODS and pods,
        timeout=120,
    )

    after = extender_decisions(cluster.extender_endpoint.metrics_url)
    assert {p["spec"]["nodeName"] for p in placed} <= set(node_pool.node_names)
    assert verb_total(after, "filter") - verb_total(before, "filter") >= PODS
    assert verb_total(after, "prioritize") - verb_total(before, "prioritize") >= PODS
    # The extender did every bind itself (bindVerb), none failed.
    assert after[("bind", "bound")] - before[("bind", "bound")] == PODS
    assert after[("bind", "error")] == before[("bind", "error")]
    assert overallocated(api) == {}
