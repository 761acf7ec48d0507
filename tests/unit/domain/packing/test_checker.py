"""The checker rejects plans that break a rule (it must be able to fail)."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.checker import check_plan
from scheduler_extender.domain.packing.disruption import DisruptionBudget, LabelSelector
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.plan import Action, ActionKind, Plan
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.solver import SolveOptions
from tests.unit.domain.packing.scenarios import node, pod

POLICY = PackingPolicy(excluded_namespaces=frozenset(), max_agent_replicas_per_node=1)
NODES = [
    node("a", cpu=4, gpu=8),
    node("b", cpu=4, gpu=8),
    node("tainted", cpu=4, unschedulable=True),
]
PODS = [
    pod("low-1", cpu=1, gpu=4, on="a", owner="low"),
    pod("low-2", cpu=1, gpu=4, on="b", owner="low"),
    pod("bare", cpu=1, on="b", owner=None),
    pod("agent", cpu=1, on="a", owner="ag", agent="llm"),
    pod("agent-2", cpu=1, owner="ag2", agent="llm"),
    pod("trainer", cpu=1, gpu=8, priority=100, owner="trainer"),
]
BUDGET = DisruptionBudget("default", "low", LabelSelector({"app": "low"}), 1)


@pytest.fixture(scope="module")
def plan() -> Plan:
    made = pack(
        NODES, PODS, policy=POLICY, options=SolveOptions(time_limit=5, workers=1), budgets=[BUDGET]
    )
    assert check_plan(made, NODES, PODS, POLICY, [BUDGET]) == []
    return made


def by_name(name: str) -> Pod:
    return next(p for p in PODS if p.name == name)


def rules(plan: Plan, *actions: Action) -> set[str]:
    """The rules broken once ``actions`` replace the plan's actions on the same pods."""
    replaced = {a.pod.uid for a in actions}
    kept = tuple(a for a in plan.actions if a.pod.uid not in replaced)
    tampered = dataclasses.replace(plan, actions=kept + actions)
    return {v.rule for v in check_plan(tampered, NODES, PODS, POLICY, [BUDGET])}


def test_the_untampered_plan_moves_one_gpu_pod_for_the_trainer(plan: Plan) -> None:
    kinds = sorted((str(a.kind), a.pod.name[:3]) for a in plan.actions)
    assert kinds == [("move", "low"), ("place", "age"), ("place", "tra")]


def test_over_capacity_is_caught(plan: Plan) -> None:
    pending = dataclasses.replace(by_name("trainer"), uid="extra", name="extra")
    extra = [*PODS, pending]
    tampered = dataclasses.replace(
        plan, actions=(*plan.actions, Action(ActionKind.PLACE, pending, plan.actions[-1].node))
    )
    assert "capacity" in {v.rule for v in check_plan(tampered, NODES, extra, POLICY, [BUDGET])}


def test_moving_a_bare_pod_is_caught(plan: Plan) -> None:
    assert "pinned" in rules(plan, Action(ActionKind.MOVE, by_name("bare"), "a", "b"))


def test_placing_on_a_node_that_refuses_the_pod_is_caught(plan: Plan) -> None:
    assert "admission" in rules(plan, Action(ActionKind.MOVE, by_name("agent"), "tainted", "a"))


def test_the_agent_limit_is_caught(plan: Plan) -> None:
    assert "agent_limit" in rules(plan, Action(ActionKind.PLACE, by_name("agent-2"), "a"))


def test_an_exceeded_disruption_budget_is_caught(plan: Plan) -> None:
    moved = {a.pod.name for a in plan.actions if a.kind is ActionKind.MOVE}
    other = by_name("low-2" if "low-1" in moved else "low-1")
    assert "budget" in rules(plan, Action(ActionKind.EVICT, other, other.node_name))


def test_a_gratuitous_eviction_is_caught() -> None:
    nodes = [node("a", cpu=4)]
    pods = [pod("low", cpu=1, on="a", owner="low")]
    made = pack(nodes, pods, policy=POLICY, options=SolveOptions(time_limit=1, workers=1))
    tampered = dataclasses.replace(made, actions=(Action(ActionKind.EVICT, pods[0], "a"),))
    assert {v.rule for v in check_plan(tampered, nodes, pods, POLICY)} == {"eviction", "report"}


def test_a_pod_in_two_actions_or_unknown_is_caught(plan: Plan) -> None:
    twice = dataclasses.replace(plan, actions=(*plan.actions, plan.actions[0]))
    assert {v.rule for v in check_plan(twice, NODES, PODS, POLICY, [BUDGET])} == {"action"}
    stranger = dataclasses.replace(by_name("bare"), uid="nope")
    assert "action" in rules(plan, Action(ActionKind.EVICT, stranger, "b"))
