"""The extender changes placement: an agent's replicas spread where kube-scheduler alone stacks them.

Four identical 8-GPU nodes; three of them already run a CPU/memory-heavy pod
without GPUs. kube-scheduler's NodeResourcesFit prefers the emptiest node, so
on its own it puts every replica of the agent on the fourth node (the
control run). Through the extender, agent spreading outweighs that preference.
Replicas are bare pods created one at a time, so kube-scheduler's default
topology spreading (which applies to ReplicaSet-owned pods) plays no part and
every decision sees the previous ones.
"""

from __future__ import annotations

from collections import Counter

from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import NodePool, bound, list_pods, wait_for

REPLICAS = 4
AGENT = "llm-7b"


def place_replicas(api: client.ApiClient, pool: NodePool, namespace: str, run: str) -> Counter[str]:
    """Creates the agent's replicas one by one; returns replicas per node."""
    for i in range(REPLICAS):
        name = f"{run}-{i}"
        pod = pool.pod(name, namespace=namespace, agent=AGENT, cpu="1", memory="1Gi")
        workload.create_pods(api, [pod])
        wait_for(
            f"{name} bound",
            lambda name=name: any(
                p["metadata"]["name"] == name for p in bound(list_pods(api, namespace))
            ),
            timeout=60,
        )
    return Counter(
        p["spec"]["nodeName"]
        for p in list_pods(api, namespace)
        if p["metadata"]["name"].startswith(f"{run}-")
    )


def test_replicas_spread_with_the_extender_and_stack_without(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    empty, *busy = node_pool.add(4, gpus=8)
    # A quarter of each busy node's CPU and memory, no GPU, placed directly.
    fillers = []
    for node in busy:
        filler = workload.gpu_pod(
            f"filler-{node.name}", namespace=namespace, scheduler_name=cluster.scheduler_name,
            gpus=0, cpu="32", memory="512Gi", **node_pool.placement,
        )  # fmt: skip
        filler["spec"]["nodeName"] = node.name
        fillers.append(filler)
    workload.create_pods(api, fillers)

    cluster.start_scheduler(extender=False)
    alone = place_replicas(api, node_pool, namespace, "control")

    cluster.start_scheduler(extender=True)
    client.CoreV1Api(api).delete_collection_namespaced_pod(
        namespace, label_selector=f"{workload.AGENT_LABEL}={AGENT}", grace_period_seconds=0
    )
    wait_for(
        "the control run's replicas to go",
        lambda: (
            not any(p["metadata"]["name"].startswith("control-") for p in list_pods(api, namespace))
        ),
    )
    with_extender = place_replicas(api, node_pool, namespace, "extender")

    # The control run proves the scenario stacks by itself...
    assert alone.most_common(1)[0] == (empty.name, REPLICAS), alone
    # ...and the extender spreads the same replicas over every node.
    assert sorted(with_extender.values()) == [1] * REPLICAS, with_extender
