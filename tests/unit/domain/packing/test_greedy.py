"""The default-scheduler-like baseline."""

from __future__ import annotations

from scheduler_extender.domain.packing.greedy import default_placement
from scheduler_extender.domain.packing.placement import Placement
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.problem import PackingProblem, build_problem
from tests.unit.domain.packing.scenarios import node, pod

POLICY = PackingPolicy()


def where(problem: PackingProblem, placement: Placement) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for group in problem.groups:
        for n, count in enumerate(placement.counts[group.index]):
            if count > len(group.running.get(n, ())):
                out.setdefault(group.pending[0].name, []).append(problem.nodes[n].name)
    return out


def test_pods_go_to_the_least_allocated_node_ties_broken_by_name() -> None:
    nodes = [node("c"), node("b"), node("a")]
    pods = [pod("busy", cpu=2, on="a", owner="busy"), pod("new", cpu=1, owner="new")]
    problem = build_problem(nodes, pods, POLICY)
    assert where(problem, default_placement(problem)) == {"new": ["b"]}


def test_higher_priority_pods_are_placed_first_and_nothing_running_moves() -> None:
    nodes = [node("a", cpu=4)]
    pods = [
        pod("early-low", cpu=3, priority=1, owner="low"),
        pod("late-high", cpu=3, priority=9, owner="high"),
        pod("running", cpu=1, on="a", owner="run"),
    ]
    problem = build_problem(nodes, pods, POLICY)
    placement = default_placement(problem)
    assert where(problem, placement) == {"late-high": ["a"]}
    assert placement.counts.sum() == 2


def test_a_pod_that_fits_nowhere_stays_pending() -> None:
    problem = build_problem([node("a", cpu=2)], [pod("huge", cpu=3, owner="h")], POLICY)
    assert default_placement(problem).counts.sum() == 0
