"""A group's pods land in one NVLink domain through the real kube-scheduler.

Eight 8-GPU nodes in two racks, one NVLink domain (``nvidia.com/gpu.clique``)
each; the first node of each domain already runs a 4-GPU pod. Pods of a group
(label ``scheduler-extender.io/group``) arrive one by one. Without
``group_topology`` (its weight 0: the control run), the packing policies send
the first two pods of a group to the two half-used nodes, one per domain (exact
fits). With it, a group of 4 pods of 4 GPUs and then a group of 8 pods of 2
GPUs each stay inside one domain.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from scheduler_extender.devcluster import nodes, workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.domain.groups import GROUP_LABEL
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS
from tests.e2e.helpers import NodePool, bound, list_pods, wait_for


def place_group(
    api: client.ApiClient, pool: NodePool, namespace: str, group: str, size: int, *, gpus: int
) -> set[str]:
    """Creates the group's pods one by one; returns the NVLink domains they landed in."""
    for i in range(size):
        name = f"{group}-{i}"
        pod: dict[str, Any] = pool.pod(
            name, namespace=namespace, gpus=gpus, cpu="1", labels={GROUP_LABEL: group}
        )
        workload.create_pods(api, [pod])

        def done(name: str = name) -> bool:
            return any(p["metadata"]["name"] == name for p in bound(list_pods(api, namespace)))

        wait_for(f"{name} bound", done, timeout=60)
    clique = {n.name: n.manifest()["metadata"]["labels"][nodes.NVLINK_LABEL] for n in pool.fleet}
    return {
        clique[p["spec"]["nodeName"]]
        for p in bound(list_pods(api, namespace))
        if p["metadata"]["name"].startswith(f"{group}-")
    }


def test_groups_stay_inside_one_nvlink_domain(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(8, gpus=8)
    assert len({n.index // nodes.NODES_PER_RACK for n in node_pool.fleet}) == 2
    fillers = []
    for node in (node_pool.fleet[0], node_pool.fleet[nodes.NODES_PER_RACK]):
        filler = node_pool.pod(f"filler-{node.name}", namespace=namespace, gpus=4, cpu="1")
        filler["spec"]["nodeName"] = node.name
        fillers.append(filler)
    workload.create_pods(api, fillers)

    weights = {**DEFAULT_WEIGHTS, "group_topology": 0}
    cluster.start_extender(env={"SCHEDULER_EXTENDER_SCORE_WEIGHTS": json.dumps(weights)})
    control = place_group(api, node_pool, namespace, "control", 4, gpus=4)
    client.CoreV1Api(api).delete_collection_namespaced_pod(
        namespace, label_selector=f"{GROUP_LABEL}=control", grace_period_seconds=0
    )
    wait_for(
        "the control group to go",
        lambda: (
            not any(p["metadata"]["name"].startswith("control-") for p in list_pods(api, namespace))
        ),
    )

    cluster.start_extender()  # the default weights
    four = place_group(api, node_pool, namespace, "four", 4, gpus=4)
    eight = place_group(api, node_pool, namespace, "eight", 8, gpus=2)

    assert len(control) == 2, control  # without the policy the group straddles both domains
    assert len(four) == 1, four
    assert len(eight) == 1, eight
