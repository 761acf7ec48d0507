"""Plans for hand-made clusters whose best plan is known."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from scheduler_extender.domain.devices import PodClaim
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.checker import check_plan
from scheduler_extender.domain.packing.disruption import DisruptionBudget, LabelSelector
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.plan import ActionKind, Plan
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.solver import SolveOptions
from tests.unit.domain.packing.scenarios import node, pod

POLICY = PackingPolicy(excluded_namespaces=frozenset({"kube-system"}))
OPTIONS = SolveOptions(time_limit=5.0, workers=1)


def plan_for(
    nodes: Sequence[Node],
    pods: Sequence[Pod],
    budgets: Sequence[DisruptionBudget] = (),
    policy: PackingPolicy = POLICY,
) -> Plan:
    plan = pack(nodes, pods, policy=policy, options=OPTIONS, budgets=budgets)
    assert check_plan(plan, nodes, pods, policy, budgets) == []
    return plan


def summary(plan: Plan) -> set[tuple[str, str, str]]:
    return {(str(a.kind), a.pod.name, a.node) for a in plan.actions}


def test_fragmented_gpus_are_consolidated_by_moving_a_lower_priority_pod() -> None:
    nodes = [node("a", gpu=8, cpu=16), node("b", gpu=8, cpu=16)]
    pods = [
        pod("low-1", gpu=4, on="a", owner="low"),
        pod("low-2", gpu=4, on="b", owner="low"),
        pod("trainer", gpu=8, priority=100, owner="trainer"),
    ]
    plan = plan_for(nodes, pods)
    assert plan.optimal
    assert plan.improves_on_default
    moves = [a for a in plan.actions if a.kind is ActionKind.MOVE]
    places = [a for a in plan.actions if a.kind is ActionKind.PLACE]
    assert len(moves) == 1
    assert len(places) == 1
    assert places[0].pod.name == "trainer"
    assert places[0].node == moves[0].source
    assert [(t.priority, t.placed_default, t.placed_after, t.evictions) for t in plan.tiers] == [
        (100, 0, 1, 0),
        (0, 2, 2, 0),
    ]


def test_a_higher_priority_pod_outweighs_any_number_of_lower_ones() -> None:
    nodes = [node("a", cpu=4)]
    pods = [
        pod("low-1", cpu=2, on="a", owner="low"),
        pod("low-2", cpu=2, on="a", owner="low"),
        pod("high", cpu=4, priority=10, owner="high"),
    ]
    plan = plan_for(nodes, pods)
    assert summary(plan) == {
        ("evict", "low-1", "a"),
        ("evict", "low-2", "a"),
        ("place", "high", "a"),
    }


def test_pods_of_the_same_priority_are_never_evicted_to_place_more_of_them() -> None:
    # Evicting "big" would place two pods instead of one, but only for its own tier.
    nodes = [node("a", cpu=4)]
    pods = [
        pod("big", cpu=4, priority=5, on="a", owner="big"),
        pod("small-1", cpu=2, priority=5, owner="small"),
        pod("small-2", cpu=2, priority=5, owner="small"),
    ]
    plan = plan_for(nodes, pods)
    assert plan.actions == ()
    assert plan.optimal


def test_a_move_is_preferred_to_an_eviction() -> None:
    nodes = [node("a", cpu=4), node("b", cpu=2)]
    pods = [
        pod("low", cpu=2, on="a", owner="low"),
        pod("high", cpu=4, priority=10, owner="high"),
    ]
    plan = plan_for(nodes, pods)
    assert summary(plan) == {("move", "low", "b"), ("place", "high", "a")}


def test_pods_that_stay_put_are_preferred_to_moves() -> None:
    nodes = [node("a", cpu=4), node("b", cpu=4), node("c", cpu=4)]
    pods = [
        pod("x-1", cpu=2, on="a", owner="x"),
        pod("x-2", cpu=2, on="b", owner="x"),
        pod("y-1", cpu=2, on="c", owner="y"),
        pod("high", cpu=4, priority=10, owner="high"),
    ]
    plan = plan_for(nodes, pods)
    assert len([a for a in plan.actions if a.kind is ActionKind.MOVE]) == 1
    assert plan.tiers[1].moves == 1


@pytest.mark.parametrize(
    ("low", "why"),
    [
        ({"owner": None}, "no_controller"),
        ({"kind": "DaemonSet"}, "daemonset"),
        ({"kind": "Job"}, "owner_kind_not_movable"),
        ({"is_mirror": True}, "mirror_pod"),
        ({"namespace": "kube-system"}, "excluded_namespace"),
        ({"annotations": {"scheduler-extender.io/movable": "false"}}, "annotated_not_movable"),
        ({"has_pod_level_constraints": True}, "pod_level_constraints"),
        ({"deleting": True}, "terminating"),
        ({"claims": (PodClaim("gpu", "its-claim"),)}, "device_claims"),
    ],
)
def test_pinned_pods_are_never_moved_or_evicted(low: dict[str, object], why: str) -> None:
    nodes = [node("a", cpu=4), node("b", cpu=4)]
    pods = [
        pod("low", cpu=2, on="a", **low),
        pod("other", cpu=2, on="b", owner="other"),
        pod("high", cpu=4, priority=10, owner="high"),
    ]
    plan = plan_for(nodes, pods)
    assert plan.pinned == {why: 1}
    assert all(a.pod.name != "low" for a in plan.actions)
    # The other node can still be cleared: its pod moves next to the pinned one.
    assert summary(plan) == {("move", "other", "a"), ("place", "high", "b")}


def test_disruption_budgets_bound_the_pods_disrupted() -> None:
    nodes = [node("a", cpu=4)]
    pods = [
        pod("low-1", cpu=2, on="a", owner="low"),
        pod("low-2", cpu=2, on="a", owner="low"),
        pod("high", cpu=4, priority=10, owner="high"),
    ]
    one = DisruptionBudget("default", "low", LabelSelector({"app": "low"}), 1)
    plan = plan_for(nodes, pods, [one])
    # Evicting one of them would not make room: nothing is evicted at all.
    assert plan.actions == ()
    assert plan.optimal
    two = DisruptionBudget("default", "low", LabelSelector({"app": "low"}), 2)
    assert len(plan_for(nodes, pods, [two]).actions) == 3


def test_an_exhausted_budget_pins_its_pods() -> None:
    nodes = [node("a", cpu=4)]
    pods = [pod("low", cpu=4, on="a", owner="low"), pod("high", cpu=4, priority=10, owner="high")]
    zero = DisruptionBudget("default", "low", LabelSelector({"app": "low"}), 0)
    plan = plan_for(nodes, pods, [zero])
    assert plan.actions == ()
    assert plan.pinned == {"disruption_budget": 1}


def test_a_cordoned_node_keeps_its_pods_but_takes_no_new_ones() -> None:
    nodes = [node("a", cpu=4, unschedulable=True), node("b", cpu=2)]
    pods = [
        pod("low", cpu=2, on="a", owner="low"),
        pod("pending", cpu=2, priority=1, owner="p"),
        pod("high", cpu=2, priority=10, owner="high"),
    ]
    plan = plan_for(nodes, pods)
    assert summary(plan) == {("place", "high", "b")}


def test_the_agent_limit_caps_replicas_per_node() -> None:
    nodes = [node("a", cpu=8), node("b", cpu=8)]
    policy = PackingPolicy(excluded_namespaces=frozenset(), max_agent_replicas_per_node=1)
    pods = [
        pod("agent-1", cpu=1, on="a", owner="ag", agent="llm"),
        pod("agent-2", cpu=1, owner="ag", agent="llm"),
        pod("agent-3", cpu=1, owner="ag", agent="llm"),
    ]
    plan = plan_for(nodes, pods, policy=policy)
    assert summary(plan) == {("place", "agent-2", "b")}


def test_a_node_above_the_agent_limit_takes_a_replica_once_the_plan_brings_it_down() -> None:
    # Two low-priority replicas of one agent run on "a" (above a limit set since); a
    # high-priority replica of it fits only there, and only if both leave: one leaving
    # frees the cpu but leaves two replicas on "a", one over the limit.
    nodes = [node("a", cpu=2)]
    policy = PackingPolicy(excluded_namespaces=frozenset(), max_agent_replicas_per_node=1)
    pods = [
        pod("low-1", cpu=1, on="a", owner="low", agent="llm"),
        pod("low-2", cpu=1, on="a", owner="low", agent="llm"),
        pod("high", cpu=1, priority=100, owner="high", agent="llm"),
    ]
    plan = plan_for(nodes, pods, policy=policy)
    assert plan.optimal
    assert summary(plan) == {
        ("evict", "low-1", "a"),
        ("evict", "low-2", "a"),
        ("place", "high", "a"),
    }


def test_pending_pods_with_device_claims_are_left_to_kube_scheduler() -> None:
    nodes = [node("a", cpu=4)]
    pods = [pod("claims", cpu=1, owner="s", claims=(PodClaim("gpu", "c"),))]
    plan = plan_for(nodes, pods)
    assert [(p.name, reason) for p, reason in plan.skipped] == [("claims", "device_claims")]


def test_pending_pods_with_pod_level_constraints_are_left_to_kube_scheduler() -> None:
    nodes = [node("a", cpu=4)]
    pods = [pod("spread", cpu=1, owner="s", has_pod_level_constraints=True)]
    plan = plan_for(nodes, pods)
    assert plan.actions == ()
    assert [(p.name, reason) for p, reason in plan.skipped] == [("spread", "pod_level_constraints")]


def test_an_over_committed_node_keeps_its_load_but_takes_nothing_more_of_it() -> None:
    nodes = [node("a", cpu=2), node("b", cpu=4)]
    pods = [
        pod("bare-1", cpu=2, on="a", owner=None),
        pod("bare-2", cpu=2, on="a", owner=None),  # bound with spec.nodeName past capacity
        pod("pending", cpu=1, priority=1, owner="p"),
    ]
    plan = plan_for(nodes, pods)
    assert summary(plan) == {("place", "pending", "b")}


def test_the_default_placement_is_certified_optimal_when_nothing_better_exists() -> None:
    nodes = [node("a", cpu=4), node("b", cpu=4)]
    pods = [
        pod("x-1", cpu=3, on="a", owner="x"),
        pod("x-2", cpu=3, on="b", owner="x"),
        pod("y", cpu=2, priority=0, owner="y"),
    ]
    plan = plan_for(nodes, pods)
    assert plan.optimal
    assert not plan.improves_on_default
    assert plan.actions == ()
