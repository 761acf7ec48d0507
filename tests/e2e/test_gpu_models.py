"""A mix of GPU models through the real kube-scheduler: pods that may use any model stay off
the scarce model that model-constrained pods need.

The pool: two 1-GPU L4 nodes and two 8-GPU H100 nodes. Pods constrained to L4
(required node affinity on ``nvidia.com/gpu.product``) have run here before
(they came and went: the extender remembers the recent GPU pods). Then pods
that may use any GPU arrive one by one, and after them the L4-only pods again.
Filling the node that is fullest after placement (``gpu_binpack`` alone,
what non-agent pods got before ``demand_packing``) puts the unconstrained
pods on the L4 nodes (1 of 1 GPU used scores 1, 1 of 8 scores 1/8) and the
L4-only pods then find no room; demand-aware packing keeps the L4s for them.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import NodePool, list_pods, submit_one_by_one, wait_for

L4 = "NVIDIA-L4"


def test_unconstrained_pods_leave_the_scarce_model_to_the_pods_that_need_it(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    cluster.start_scheduler(extender=True)
    node_pool.add(2, gpus=1)  # NVIDIA-L4
    node_pool.add(2, gpus=8)  # NVIDIA-H100-80GB-HBM3
    l4_nodes = {n.name for n in node_pool.fleet if n.gpus == 1}
    core = client.CoreV1Api(api)

    def l4_only(name: str) -> dict[str, Any]:
        return node_pool.pod(name, namespace=namespace, gpus=1, gpu_models=[L4], cpu="1")

    earlier = submit_one_by_one(api, namespace, [l4_only(f"earlier-{i}") for i in range(2)])
    assert set(earlier.values()) == l4_nodes  # the filter and kube-scheduler agree on models
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_for("the earlier L4 pods to go", lambda: not list_pods(api, namespace))

    anywhere = submit_one_by_one(
        api,
        namespace,
        [node_pool.pod(f"any-{i}", namespace=namespace, gpus=1, cpu="1") for i in range(4)],
    )
    assert not set(anywhere.values()) & l4_nodes, anywhere

    later = [l4_only(f"later-{i}") for i in range(2)]
    placed = submit_one_by_one(api, namespace, later)
    assert {placed[f"later-{i}"] for i in range(2)} == l4_nodes
