"""The filter honours a packing plan's reservations, which end when pods arrive or expire."""

from __future__ import annotations

import dataclasses

from scheduler_extender.domain.filtering import FilterRules, Reason, filter_nodes
from scheduler_extender.domain.packing.holds import holds_for, outstanding
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.reservations import Reservation, ReservationBook
from scheduler_extender.domain.packing.solver import SolveOptions
from scheduler_extender.domain.resources import CPU, PODS, Resources
from scheduler_extender.domain.shared import SharedCluster
from tests.unit.domain.packing.scenarios import node, pod

RULES = FilterRules()


def cluster_with(book: ReservationBook) -> SharedCluster:
    shared = SharedCluster(assume_timeout=30.0)
    with shared.locked():
        shared.state.replace_nodes([node("a", cpu=4), node("b", cpu=4)])
        shared.state.replace_pods([pod("busy", cpu=1, on="b", owner="busy")])
        shared.state.synced = True
        shared.publish_locked()
    shared.publish_rule("reservations", book)
    return shared


def test_a_reserved_pod_may_only_go_to_its_node() -> None:
    book = ReservationBook.of(
        [Reservation("a", Resources.of({CPU: 3000, PODS: 1}), 1e9, pod_uid="uid-p")]
    )
    outcome = filter_nodes(pod("p", cpu=3), ["a", "b"], cluster_with(book).snapshot(), RULES)
    assert outcome.passed == ["a"]
    assert outcome.failed["b"].reason is Reason.RESERVED


def test_other_pods_see_reserved_room_as_taken() -> None:
    book = ReservationBook.of(
        [Reservation("a", Resources.of({CPU: 3000, PODS: 1}), 1e9, pod_uid="uid-p")]
    )
    snapshot = cluster_with(book).snapshot()
    blocked = filter_nodes(pod("q", cpu=2, owner="q"), ["a", "b"], snapshot, RULES)
    assert blocked.passed == ["b"]
    assert blocked.failed["a"].reason is Reason.RESERVED
    small = filter_nodes(pod("r", cpu=1, owner="r"), ["a"], snapshot, RULES)
    assert small.passed == ["a"]  # what is not reserved stays usable


def test_replacements_are_matched_by_owner_and_template_hash() -> None:
    book = ReservationBook.of(
        [
            Reservation(
                "a", Resources.of({CPU: 3000}), 1e9, owner_uid="uid-web", template_hash="h", slots=1
            )
        ]
    )
    snapshot = cluster_with(book).snapshot()
    replacement = pod("web-new", cpu=3, owner="web")
    assert filter_nodes(replacement, ["a", "b"], snapshot, RULES).passed == ["a"]
    other_template = dataclasses.replace(replacement, labels={"pod-template-hash": "other"})
    assert filter_nodes(other_template, ["a", "b"], snapshot, RULES).passed == ["b"]


def test_a_plan_holds_until_its_pods_arrive_or_time_runs_out() -> None:
    nodes = [node("a", gpu=8, cpu=16), node("b", gpu=8, cpu=16)]
    pods = [
        pod("low-1", gpu=4, on="a", owner="low"),
        pod("low-2", gpu=4, on="b", owner="low"),
        pod("trainer", gpu=8, priority=100, owner="trainer"),
    ]
    plan = pack(nodes, pods, policy=PackingPolicy(), options=SolveOptions(time_limit=2, workers=1))
    holds = holds_for(plan, pods, expires_at=100.0)
    assert len(outstanding(holds, pods, now=0.0).reservations) == 2
    assert outstanding(holds, pods, now=100.0).reservations == ()
    move = next(a for a in plan.actions if a.kind == "move")
    place = next(a for a in plan.actions if a.kind == "place")
    arrived = [
        *(p for p in pods if p.name not in ("trainer", move.pod.name)),
        dataclasses.replace(move.pod, uid="uid-new", name="low-new", node_name=move.node),
        dataclasses.replace(place.pod, node_name=place.node),
    ]
    assert outstanding(holds, arrived, now=0.0).reservations == ()
