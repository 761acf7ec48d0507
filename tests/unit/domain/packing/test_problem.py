"""Problem construction: grouping interchangeable pods, pinning, skipping, eligibility."""

from __future__ import annotations

import numpy as np

from scheduler_extender.domain.objects import Taint, Toleration
from scheduler_extender.domain.packing.disruption import DisruptionBudget, LabelSelector
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.problem import build_problem
from tests.unit.domain.packing.scenarios import node, pod

POLICY = PackingPolicy()


def test_replicas_with_the_same_template_form_one_group_counted_per_node() -> None:
    nodes = [node("b"), node("a")]
    pods = [
        pod("web-1", on="a", owner="web"),
        pod("web-2", on="a", owner="web"),
        pod("web-3", on="b", owner="web"),
        pod("web-4", owner="web"),
    ]
    problem = build_problem(nodes, pods, POLICY)
    assert [n.name for n in problem.nodes] == ["a", "b"]
    (group,) = problem.groups
    assert group.size == 4
    assert [p.name for p in group.pending] == ["web-4"]
    assert problem.original.tolist() == [[2, 1]]


def test_different_requests_priorities_or_bare_pods_make_separate_groups() -> None:
    pods = [
        pod("a-1", owner="a"),
        pod("a-2", owner="a", cpu=2),
        pod("a-3", owner="a", priority=5),
        pod("bare-1", owner=None),
        pod("bare-2", owner=None),
    ]
    problem = build_problem([node("n")], pods, POLICY)
    assert len(problem.groups) == 5
    assert problem.tiers == (5, 0)


def test_budgets_split_groups_and_only_those_covering_movable_pods_are_kept() -> None:
    pods = [pod("a-1", on="n", owner="a"), pod("a-2", on="n", owner="a")]
    covering = DisruptionBudget("default", "a", LabelSelector({"app": "a"}), 1)
    elsewhere = DisruptionBudget("other", "a", LabelSelector({"app": "a"}), 1)
    problem = build_problem([node("n")], pods, POLICY, [elsewhere, covering])
    assert problem.budgets == (covering,)
    assert problem.groups[0].budgets == (0,)


def test_a_selector_less_budget_covers_nothing_and_an_empty_one_everything() -> None:
    target = pod("a", on="n", owner="a")
    assert not DisruptionBudget("default", "x", None, 0).covers(target)
    assert DisruptionBudget("default", "x", LabelSelector(), 0).covers(target)


def test_arrivals_follow_taints_selectors_cordons_and_room_next_to_pinned_pods() -> None:
    nodes = [
        node("free"),
        node("tainted", taints=(Taint("gpu", "", "NoSchedule"),)),
        node("cordoned", unschedulable=True),
        node("full"),
    ]
    pods = [
        pod("pinned", cpu=4, on="full", owner=None),
        pod("plain", owner="plain"),
        pod("tolerant", owner="tolerant", tolerations=(Toleration("gpu", "Exists"),)),
    ]
    problem = build_problem(nodes, pods, POLICY)
    arrivals = {
        g.pending[0].name: [problem.nodes[i].name for i in np.flatnonzero(g.arrivals)]
        for g in problem.groups
    }
    assert arrivals == {"plain": ["free"], "tolerant": ["free", "tainted"]}


def test_running_pods_on_nodes_outside_the_snapshot_are_pinned_and_use_no_capacity() -> None:
    problem = build_problem([node("n")], [pod("ghost", on="gone", owner="g")], POLICY)
    assert [(p.name, str(r)) for p, r in problem.pinned] == [("ghost", "node_not_in_snapshot")]
    assert problem.fixed.sum() == 0


def test_pods_of_other_schedulers_are_pinned_or_skipped_when_a_scheduler_is_named() -> None:
    policy = PackingPolicy(scheduler_names=frozenset({"gpu-scheduler"}))
    pods = [pod("running", on="n", owner="r"), pod("pending", owner="p")]
    problem = build_problem([node("n")], pods, policy)
    assert [str(r) for _, r in problem.pinned] == ["other_scheduler"]
    assert [str(r) for _, r in problem.skipped] == ["other_scheduler"]
    assert problem.groups == ()
