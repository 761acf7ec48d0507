"""With the extender down, ``ignorable`` decides whether GPU pods still schedule."""

from __future__ import annotations

from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import NodePool, bound, events_for, list_pods, wait_for

PODS = 3


def test_ignorable_extender_down_pods_still_schedule(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(2, gpus=4)
    cluster.start_scheduler(extender=True, ignorable=True)
    cluster.stop_extender()

    workload.create_pods(api, [node_pool.pod(f"gpu-{i}", namespace=namespace) for i in range(PODS)])

    wait_for(
        f"{PODS} pods bound without the extender",
        lambda: len(bound(list_pods(api, namespace))) == PODS,
    )


def test_required_extender_down_pods_wait_until_it_is_back(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(2, gpus=4)
    cluster.start_scheduler(extender=True, ignorable=False)
    cluster.stop_extender()

    names = [f"gpu-{i}" for i in range(PODS)]
    workload.create_pods(api, [node_pool.pod(n, namespace=namespace) for n in names])

    for name in names:
        failures = wait_for(
            f"a FailedScheduling event for {name}",
            lambda name=name: [
                e for e in events_for(api, namespace, name) if e["reason"] == "FailedScheduling"
            ],
            timeout=60,
        )
        assert str(cluster.extender_endpoint.port) in failures[0]["message"], failures[0]["message"]
    assert bound(list_pods(api, namespace)) == []

    cluster.start_extender()
    # kube-scheduler retries after its backoff (podMaxBackoffSeconds, 10 s by default).
    wait_for(
        f"{PODS} pods bound once the extender is back",
        lambda: len(bound(list_pods(api, namespace))) == PODS,
        timeout=90,
    )
