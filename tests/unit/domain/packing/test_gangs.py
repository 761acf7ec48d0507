"""Pod groups in the packing fallback: a group with no pod running is placed whole or not at all."""

from __future__ import annotations

import dataclasses

from scheduler_extender.domain.groups import (
    GROUP_LABEL,
    GROUP_SIZE_ANNOTATION,
    LWS_GROUP_INDEX_LABEL,
    LWS_NAME_LABEL,
)
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.checker import check_plan
from scheduler_extender.domain.packing.greedy import default_placement
from scheduler_extender.domain.packing.plan import Action, ActionKind, Plan
from scheduler_extender.domain.packing.problem import build_problem
from tests.unit.domain.packing.scenarios import node, pod
from tests.unit.domain.packing.test_plans import POLICY, plan_for


def member(name: str, group: str, *, gpu: int, priority: int = 0) -> Pod:
    p = pod(name, gpu=gpu, priority=priority, owner=group)
    return dataclasses.replace(p, labels={**p.labels, GROUP_LABEL: group})


def placed(plan: Plan) -> dict[str, str]:
    return {a.pod.name: a.node for a in plan.actions if a.kind is ActionKind.PLACE}


def test_pods_of_a_group_form_a_gang_apart_from_identical_pods() -> None:
    pods = [
        member("g-0", "experts", gpu=2),
        member("g-1", "experts", gpu=2),
        pod("lone", gpu=2, owner="experts"),  # same owner, requests and template: no member
    ]
    problem = build_problem([node("a", gpu=8)], pods, POLICY)
    [gang] = problem.gangs
    assert sorted(len(problem.groups[g].pending) for g in gang) == [2]
    assert len(problem.groups) == 2


def test_a_gang_that_cannot_be_placed_whole_is_not_placed_at_all() -> None:
    # 4 free GPUs for a gang of 3 x 2 GPUs: two members would fit, which would only hold GPUs
    # idle; the 2-GPU pods that are no member get the room instead.
    nodes = [node("a", gpu=4, cpu=16), node("b", gpu=4, cpu=16)]
    pods = [
        pod("busy-a", gpu=2, on="a", owner="busy", priority=100),
        pod("busy-b", gpu=2, on="b", owner="busy", priority=100),
        *(member(f"expert-{i}", "experts", gpu=2, priority=10) for i in range(3)),
        pod("small-1", gpu=2, owner="small"),
        pod("small-2", gpu=2, owner="small"),
    ]
    problem = build_problem(nodes, pods, POLICY)
    default = default_placement(problem)
    gang = problem.gangs[0]
    assert sum(int(default.counts[g].sum()) for g in gang) == 0
    plan = plan_for(nodes, pods)
    assert set(placed(plan)) == {"small-1", "small-2"}


def test_room_is_made_for_a_whole_gang_by_moving_a_pod() -> None:
    # Two 8-GPU members: one fits on the empty node, the other only once a 4-GPU pod moves
    # from b to a, next to the other one.
    nodes = [node("a", gpu=8, cpu=16), node("b", gpu=8, cpu=16), node("c", gpu=8, cpu=16)]
    pods = [
        pod("low-1", gpu=4, on="a", owner="low"),
        pod("low-2", gpu=4, on="b", owner="low"),
        member("worker-0", "trainer", gpu=8, priority=100),
        member("worker-1", "trainer", gpu=8, priority=100),
    ]
    plan = plan_for(nodes, pods)
    assert sorted(placed(plan).values()) in (["b", "c"], ["a", "c"])
    assert [a.kind for a in plan.actions].count(ActionKind.MOVE) == 1
    top = plan.tiers[0]
    assert (top.priority, top.placed_default, top.placed_after) == (100, 0, 2)


def test_a_leaderworkerset_group_is_a_gang_and_the_checker_refuses_half_of_one() -> None:
    lws = {LWS_NAME_LABEL: "moe", LWS_GROUP_INDEX_LABEL: "0"}
    leader = pod("moe-0", gpu=8, owner="moe", kind="StatefulSet")
    worker = pod("moe-0-1", gpu=8, owner="moe-0", kind="StatefulSet")
    pods = [dataclasses.replace(p, labels={**p.labels, **lws}) for p in (leader, worker)]
    nodes = [node("a", gpu=8, cpu=16)]
    plan = plan_for(nodes, pods)
    assert placed(plan) == {}
    half = dataclasses.replace(plan, actions=(Action(ActionKind.PLACE, pods[0], "a"),))
    rules = {v.rule for v in check_plan(half, nodes, pods, POLICY)}
    assert "gang" in rules


def sized(p: Pod, size: str) -> Pod:
    return dataclasses.replace(p, annotations={**p.annotations, GROUP_SIZE_ANNOTATION: size})


def test_a_gang_is_placed_only_once_all_the_pods_it_declares_exist() -> None:
    nodes = [node("a", gpu=8, cpu=16)]
    first = [sized(member(f"expert-{i}", "experts", gpu=2), "3") for i in range(2)]
    plan = plan_for(nodes, first)
    assert placed(plan) == {}
    assert {(p.name, str(reason)) for p, reason in plan.skipped} == {
        ("expert-0", "incomplete_group"),
        ("expert-1", "incomplete_group"),
    }
    whole = [*first, sized(member("expert-2", "experts", gpu=2), "3")]
    assert set(placed(plan_for(nodes, whole))) == {"expert-0", "expert-1", "expert-2"}


def test_a_group_with_a_pod_running_is_no_gang_whatever_size_it_declares() -> None:
    nodes = [node("a", gpu=8, cpu=16)]
    running = dataclasses.replace(sized(member("expert-0", "experts", gpu=2), "3"), node_name="a")
    pods = [running, sized(member("expert-1", "experts", gpu=2), "3")]
    assert set(placed(plan_for(nodes, pods))) == {"expert-1"}
