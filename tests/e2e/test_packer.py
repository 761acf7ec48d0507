"""The background packer on the real control plane.

Two 8-GPU nodes each run a 4-GPU low-priority pod, so an 8-GPU high-priority
pod (whose PriorityClass never preempts) stays Pending only because of
fragmentation. With the packer enabled in the extender, a Deployment pod is
moved: evicted through the Eviction API, recreated by its ReplicaSet and
placed by kube-scheduler where the plan reserved, and the high-priority pod
takes the freed node. Bare pods and pods whose PodDisruptionBudget allows no
disruption are never evicted; dry-run mode only records Events.

A gang (a pod group none of whose pods runs yet) is placed all or nothing:
two 8-GPU members are placed once the plan frees two whole nodes, and none is
when only one node could ever be freed, although one member would fit there.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler_extender.devcluster import nodes, workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.domain.groups import GROUP_LABEL, GROUP_SIZE_ANNOTATION
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
# service/packer.py logs one such line per solve.
PLAN_LINE = re.compile(r"packing plan: status \S+, (\d+) actions, gain (\d+)")


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
    offset = log_size(cluster)  # the log holds earlier tests' plans too
    cluster.start_extender(env=packer_env(cluster, dry_run=False))
    workload.create_pods(api, [gpu_pod("trainer", namespace, node_pool, high, 8)])

    # Give the packer several rounds (debounce 1 s, a solve at most every 3 s).
    wait_for("the packer to have planned", lambda: plans_since(cluster, offset), timeout=60)
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


def gang_member(
    name: str, namespace: str, pool: NodePool, priority_class: str, group: str
) -> dict[str, Any]:
    """A bare 8-GPU pod of the pod group ``group`` of two (domain/groups.py)."""
    pod = pool.pod(name, namespace=namespace, gpus=8)
    pod["spec"]["priorityClassName"] = priority_class
    pod["metadata"]["labels"] = {GROUP_LABEL: group}
    pod["metadata"].setdefault("annotations", {})[GROUP_SIZE_ANNOTATION] = "2"
    return pod


def half_full(
    api: client.ApiClient, namespace: str, pool: NodePool, low: str, *, movable_b: bool
) -> tuple[dict[str, str], str]:
    """One 4-GPU low-priority pod on each of the pool's three 8-GPU nodes.

    A bare pod "pinned", then "low-a" (a Deployment's) and "low-b" (a
    Deployment's if ``movable_b``, else bare), each on a node of its own.
    Returns (low pod name prefix -> node, the pinned pod's node).
    """
    apps = client.AppsV1Api(api)
    workload.create_pods(api, [gpu_pod("pinned", namespace, pool, low, 4)])
    third = placed(api, namespace, "pinned")["spec"]["nodeName"]
    nodes.cordon(api, third, True)  # the next ones must go to the other nodes
    where: dict[str, str] = {}
    for name, movable in (("low-a", True), ("low-b", movable_b)):
        if movable:
            apps.create_namespaced_deployment(
                namespace, gpu_deployment(name, namespace, pool, low, labels={"tier": "low"})
            )
        else:
            workload.create_pods(api, [gpu_pod(name, namespace, pool, low, 4)])
        where[name] = placed(api, namespace, name)["spec"]["nodeName"]
        nodes.cordon(api, where[name], True)
    for node in (third, *where.values()):
        nodes.cordon(api, node, False)
    assert len({third, *where.values()}) == 3
    return where, third


def submit_gang(
    cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    pool: NodePool,
    classes: tuple[str, str],
    *,
    movable_b: bool,
) -> tuple[dict[str, str], str, dict[str, str], int]:
    """``half_full`` on three 8-GPU nodes, then the packer started and a gang of two
    high-priority 8-GPU members submitted, which fits nowhere as the nodes are.

    Returns ``half_full``'s (where, third), the low pods running before, and the
    extender log's size before the packer started (for ``plans_since``).
    """
    high, low = classes
    pool.add(3, gpus=8)
    where, third = half_full(api, namespace, pool, low, movable_b=movable_b)
    before = running_low(api, namespace)
    offset = log_size(cluster)
    cluster.start_extender(env=packer_env(cluster, dry_run=False))
    workload.create_pods(
        api, [gang_member(f"trainer-{i}", namespace, pool, high, "trainer") for i in (0, 1)]
    )
    return where, third, before, offset


def log_size(cluster: LocalCluster) -> int:
    log = cluster.logs["extender"]
    return log.stat().st_size if log.exists() else 0


def plans_since(cluster: LocalCluster, offset: int) -> list[tuple[int, int]]:
    """(actions, gain) of each plan the extender logged after byte ``offset`` of its log."""
    with cluster.logs["extender"].open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return [(int(actions), int(gain)) for actions, gain in PLAN_LINE.findall(text)]


def members_bound(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Bound gang member -> its node."""
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in bound(list_pods(api, namespace))
        if p["metadata"]["name"].startswith("trainer-")
    }


def test_a_gang_is_placed_whole_once_the_plan_frees_two_nodes(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    classes: tuple[str, str],
) -> None:
    cluster = reconfigurable_cluster
    # No member fits anywhere (4 GPUs free on every node): only the packer can help.
    where, third, before, offset = submit_gang(
        cluster, api, namespace, node_pool, classes, movable_b=True
    )

    members = wait_for(
        "both gang members bound",
        lambda: len(m := members_bound(api, namespace)) == 2 and m,
        timeout=120,
    )
    # One member on each of the two nodes the low-priority pods ran on.
    assert sorted(members.values()) == sorted(where.values())
    # One low-priority pod was moved next to the pinned one (its replacement runs
    # there); the other was evicted, and its replacement fits nowhere.
    lows = wait_for(
        "one low-priority replica bound next to the pinned pod, the other one pending",
        lambda: (
            list((r := running_low(api, namespace)).values()) == [third]
            and _pending_low(api, namespace) == 1
            and r
        ),
        timeout=90,
    )
    assert not set(lows) & set(before)
    plans = plans_since(cluster, offset)
    # The executed plan placed both members (gain 2); no plan placed one alone.
    assert {gain for _, gain in plans if gain} == {2}, plans
    assert (4, 2) in plans, plans  # evict one, move one, place two
    for name in members:
        assert "PackingPlan" in reasons(api, namespace, name)
    assert overallocated(api) == {}


def test_a_gang_that_fits_only_in_part_is_not_placed_at_all(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    classes: tuple[str, str],
) -> None:
    # Only low-a can move (to either other node), so one whole node could be freed: one
    # member would fit there, as a lone 8-GPU pod does, but never both.
    cluster = reconfigurable_cluster
    _, _, before, offset = submit_gang(cluster, api, namespace, node_pool, classes, movable_b=False)

    wait_for("the packer to have planned", lambda: plans_since(cluster, offset), timeout=60)
    time.sleep(8)  # several more rounds (debounce 1 s, a solve at most every 3 s)
    plans = plans_since(cluster, offset)
    assert set(plans) == {(0, 0)}, plans
    assert running_low(api, namespace) == before
    assert members_bound(api, namespace) == {}
    for pod in list_pods(api, namespace):  # the members, the low pods, the pinned one
        assert "PackingPlan" not in reasons(api, namespace, pod["metadata"]["name"])
    assert overallocated(api) == {}


def _pending_low(api: client.ApiClient, namespace: str) -> int:
    return sum(
        1
        for p in list_pods(api, namespace)
        if p["metadata"]["name"].startswith("low-") and not p["spec"].get("nodeName")
    )


def _budget_observed(api: client.ApiClient, namespace: str) -> bool:
    try:
        pdb: Any = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("low", namespace)
    except ApiException:
        return False
    status = pdb.status
    return (
        status is not None and status.observed_generation is not None and status.expected_pods == 2
    )
