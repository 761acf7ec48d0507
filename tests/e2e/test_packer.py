"""The background packer on the real control plane.

Two 8-GPU nodes each run a 4-GPU low-priority pod, so an 8-GPU high-priority
pod (whose PriorityClass never preempts) stays Pending only because of
fragmentation. With the packer enabled in the extender, a Deployment pod is
moved: evicted through the Eviction API, recreated by its ReplicaSet and
placed by kube-scheduler where the plan reserved, and the high-priority pod
takes the freed node. Bare pods and pods whose PodDisruptionBudget allows no
disruption are never evicted; dry-run mode only records Events.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler_extender.devcluster import nodes, workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import (
    NodePool,
    bound,
    events_for,
    gpu_deployment,
    list_pods,
    overallocated,
    wait_for,
)

GPU = workload.GPU_RESOURCE


def packer_env(cluster: LocalCluster, *, dry_run: bool) -> dict[str, str]:
    return {
        **cluster.options.extender_env,
        "SCHEDULER_EXTENDER_PACKER__ENABLED": "true",
        "SCHEDULER_EXTENDER_PACKER__DRY_RUN": "true" if dry_run else "false",
        "SCHEDULER_EXTENDER_PACKER__INTERVAL": "1s",
        "SCHEDULER_EXTENDER_PACKER__DEBOUNCE": "1s",
        "SCHEDULER_EXTENDER_PACKER__MIN_INTERVAL": "3s",
        "SCHEDULER_EXTENDER_PACKER__EVICTIONS_PER_MINUTE": "120",
        "SCHEDULER_EXTENDER_PACKER__LEASE_NAMESPACE": "default",
        "SCHEDULER_EXTENDER_PACKER__LEASE_NAME": f"e2e-packer-{uuid.uuid4().hex[:6]}",
    }


def gpu_pod(
    name: str, namespace: str, pool: NodePool, priority_class: str, gpus: int
) -> dict[str, Any]:
    pod = pool.pod(name, namespace=namespace, gpus=gpus)
    pod["spec"]["priorityClassName"] = priority_class
    pod["metadata"]["labels"] = {"tier": "low"}
    return pod


def placed(api: client.ApiClient, namespace: str, prefix: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        pods = [
            p for p in bound(list_pods(api, namespace)) if p["metadata"]["name"].startswith(prefix)
        ]
        return pods[0] if pods else None

    found: dict[str, Any] = wait_for(f"a pod of {prefix} bound", find, timeout=90)
    return found


def fragment(
    api: client.ApiClient, namespace: str, pool: NodePool, low: str, *, bare: bool
) -> dict[str, str]:
    """One 4-GPU low-priority pod on each of the pool's two 8-GPU nodes: name prefix -> node."""
    apps = client.AppsV1Api(api)
    where: dict[str, str] = {}
    for i, name in enumerate(("low-a", "low-b")):
        if bare:
            workload.create_pods(api, [gpu_pod(name, namespace, pool, low, 4)])
        else:
            apps.create_namespaced_deployment(
                namespace, gpu_deployment(name, namespace, pool, low, labels={"tier": "low"})
            )
        where[name] = placed(api, namespace, name)["spec"]["nodeName"]
        if i == 0:
            nodes.cordon(api, where[name], True)  # the second one must go to the other node
    nodes.cordon(api, where["low-a"], False)
    assert len(set(where.values())) == 2
    return where


def running_low(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """uid -> node of the bound low-priority pods."""
    return {
        p["metadata"]["uid"]: p["spec"]["nodeName"]
        for p in bound(list_pods(api, namespace))
        if p["metadata"]["name"].startswith("low-") and not p["metadata"].get("deletionTimestamp")
    }


def reasons(api: client.ApiClient, namespace: str, pod: str) -> set[str]:
    return {e["reason"] for e in events_for(api, namespace, pod)}


def test_a_fragmented_gpu_pod_is_placed_by_moving_a_deployment_pod(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    classes: tuple[str, str],
) -> None:
    cluster = reconfigurable_cluster
    high, low = classes
    node_pool.add(2, gpus=8)
    fragment(api, namespace, node_pool, low, bare=False)
    cluster.start_extender(env=packer_env(cluster, dry_run=False))
    workload.create_pods(api, [gpu_pod("trainer", namespace, node_pool, high, 8)])

    trainer = placed(api, namespace, "trainer")
    target = trainer["spec"]["nodeName"]
    # The moved replica was recreated by its ReplicaSet on the node the plan reserved.
    lows = wait_for(
        "both low-priority replicas bound next to each other",
        lambda: len(r := running_low(api, namespace)) == 2 and r,
        timeout=90,
    )
    assert set(lows.values()) == set(node_pool.node_names) - {target}
    assert "PackingPlan" in reasons(api, namespace, "trainer")
    assert overallocated(api) == {}


@pytest.mark.parametrize("protection", ["bare", "budget"])
def test_bare_and_budget_protected_pods_are_never_evicted(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    classes: tuple[str, str],
    protection: str,
) -> None:
    cluster = reconfigurable_cluster
    high, low = classes
    node_pool.add(2, gpus=8)
    fragment(api, namespace, node_pool, low, bare=protection == "bare")
    if protection == "budget":
        budget = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "low", "namespace": namespace},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"tier": "low"}}},
        }
        client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(namespace, budget)
        wait_for("the budget's status", lambda: _budget_observed(api, namespace), timeout=60)
    before = running_low(api, namespace)
    cluster.start_extender(env=packer_env(cluster, dry_run=False))
    workload.create_pods(api, [gpu_pod("trainer", namespace, node_pool, high, 8)])

    # Give the packer several rounds (debounce 1 s, a solve at most every 3 s).
    wait_for(
        "the packer to have planned",
        lambda: "packing plan:" in cluster.logs["extender"].read_text(),
        timeout=60,
    )
    time.sleep(8)
    assert running_low(api, namespace) == before
    trainer = next(p for p in list_pods(api, namespace) if p["metadata"]["name"] == "trainer")
    assert not trainer["spec"].get("nodeName")
    assert "PackingPlan" not in reasons(api, namespace, "trainer")


def test_dry_run_records_events_and_changes_nothing(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    classes: tuple[str, str],
) -> None:
    cluster = reconfigurable_cluster
    high, low = classes
    node_pool.add(2, gpus=8)
    fragment(api, namespace, node_pool, low, bare=False)
    before = running_low(api, namespace)
    cluster.start_extender(env=packer_env(cluster, dry_run=True))
    workload.create_pods(api, [gpu_pod("trainer", namespace, node_pool, high, 8)])

    wait_for(
        "a dry-run Event on the pending pod",
        lambda: "PackingDryRun" in reasons(api, namespace, "trainer"),
        timeout=60,
    )
    time.sleep(5)
    assert running_low(api, namespace) == before
    trainer = next(p for p in list_pods(api, namespace) if p["metadata"]["name"] == "trainer")
    assert not trainer["spec"].get("nodeName")


def _budget_observed(api: client.ApiClient, namespace: str) -> bool:
    try:
        pdb: Any = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("low", namespace)
    except ApiException:
        return False
    status = pdb.status
    return (
        status is not None and status.observed_generation is not None and status.expected_pods == 2
    )
