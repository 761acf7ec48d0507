from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.filtering import FilterRules, Reason, check_node, filter_nodes
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.reservations import Reservation, ReservationBook
from scheduler_extender.domain.rules import FreeAmounts
from scheduler_extender.domain.shared import SharedCluster
from tests.builders import GPU, node, pod


def cluster() -> ClusterState:
    state = ClusterState()
    for name, gpus in (("big", 8), ("small", 1), ("full", 4)):
        state.upsert_node(node(name, gpus))
    state.upsert_pod(pod("hog", 4, node="full", agent="x"))
    return state


def test_capacity_below_request_is_unresolvable_and_lack_of_room_is_not() -> None:
    outcome = filter_nodes(
        pod("p", 2), ["big", "small", "full"], cluster().snapshot(), FilterRules()
    )
    assert outcome.passed == ["big"]
    assert outcome.failed["small"].unresolvable
    assert outcome.failed["small"].reason is Reason.EXCEEDS_CAPACITY
    assert not outcome.failed["full"].unresolvable
    assert outcome.failed["full"].reason is Reason.INSUFFICIENT


def test_cpu_and_memory_are_checked_too() -> None:
    outcome = filter_nodes(pod("p", 0, cpu="65"), ["big"], cluster().snapshot(), FilterRules())
    assert outcome.failed["big"].reason is Reason.EXCEEDS_CAPACITY
    assert "cpu" in outcome.failed["big"].message


def test_agent_replica_limit_per_node() -> None:
    state = cluster()
    state.upsert_node(node("roomy", 8))
    state.upsert_pod(pod("x-0", 1, node="roomy", agent="x"))
    rules = FilterRules(max_agent_replicas_per_node=1)
    outcome = filter_nodes(pod("x-1", 1, agent="x"), ["roomy", "big"], state.snapshot(), rules)
    assert outcome.passed == ["big"]
    assert outcome.failed["roomy"].reason is Reason.AGENT_LIMIT


def test_unknown_and_duplicate_names() -> None:
    outcome = filter_nodes(
        pod("p", 1), ["big", "big", "nope", ""], cluster().snapshot(), FilterRules()
    )
    assert outcome.passed == ["big"]
    assert set(outcome.failed) == {"nope", ""}
    assert outcome.failed["nope"].reason is Reason.UNKNOWN_NODE


def nominated(name: str, gpus: int, where: str, **kwargs: Any) -> Pod:
    return dataclasses.replace(pod(name, gpus, **kwargs), nominated_node_name=where)


def test_pods_nominated_at_equal_or_higher_priority_hold_their_room() -> None:
    state = cluster()
    state.upsert_pod(nominated("high", 6, "big", priority=100))
    snap = state.snapshot()
    for priority in (0, 100):
        outcome = filter_nodes(pod("p", 4, priority=priority), ["big"], snap, FilterRules())
        assert outcome.passed == []
        rejection = outcome.failed["big"]
        assert rejection.reason is Reason.INSUFFICIENT
        assert not rejection.unresolvable  # preempting could still make room
    # a higher-priority pod may take room freed for a lower-priority one
    assert filter_nodes(pod("p", 4, priority=101), ["big"], snap, FilterRules()).passed == ["big"]
    assert check_node(pod("p", 2), "big", snap, FilterRules()) is None  # 8 - 6 left


def test_a_nominated_pod_does_not_hold_room_against_itself() -> None:
    state = cluster()
    me = nominated("me", 7, "big", priority=5)
    state.upsert_pod(me)
    assert check_node(me, "big", state.snapshot(), FilterRules()) is None
    state.upsert_pod(nominated("twin", 2, "big", priority=5))
    assert check_node(me, "big", state.snapshot(), FilterRules()) is not None  # the twin's are


def test_nominations_stop_counting_once_bound_or_deleted() -> None:
    state = cluster()
    held = nominated("held", 8, "big")
    state.upsert_pod(held)
    assert check_node(pod("p", 1), "big", state.snapshot(), FilterRules()) is not None
    state.delete_pod(held.uid)
    assert check_node(pod("p", 1), "big", state.snapshot(), FilterRules()) is None
    state.upsert_pod(held)
    state.upsert_pod(dataclasses.replace(held, node_name="small"))  # bound elsewhere
    assert check_node(pod("p", 1), "big", state.snapshot(), FilterRules()) is None


def test_nominated_replicas_count_against_the_agent_limit() -> None:
    state = cluster()
    state.upsert_pod(nominated("x-0", 1, "big", agent="x"))
    rules = FilterRules(max_agent_replicas_per_node=1)
    outcome = filter_nodes(pod("x-1", 1, agent="x"), ["big"], state.snapshot(), rules)
    assert outcome.failed["big"].reason is Reason.AGENT_LIMIT
    assert filter_nodes(pod("y-1", 1, agent="y"), ["big"], state.snapshot(), rules).passed == [
        "big"
    ]


def test_nominated_room_and_a_reservation_add_up() -> None:
    state = cluster()
    state.upsert_pod(nominated("held", 4, "big"))
    book = ReservationBook.of(
        [Reservation(node="big", requests=pod("r", 3).requests, expires_at=1e9, pod_uid="other")]
    )
    snap = dataclasses.replace(state.snapshot(), rules=(book,))
    outcome = filter_nodes(pod("p", 2), ["big"], snap, FilterRules())
    # 8 - 4 nominated = 4 would fit 2, 8 - 3 reserved = 5 too; 8 - 4 - 3 = 1 does not.
    assert outcome.failed["big"].reason is Reason.RESERVED


@dataclasses.dataclass(frozen=True)
class KeepOff:
    """An extension rule: closes ``nodes`` to every pod, once published."""

    nodes: frozenset[str]

    @property
    def reason(self) -> str:
        return "reserved"

    def __bool__(self) -> bool:
        return bool(self.nodes)

    def blocked(self, pod: Pod, nodes: Iterable[str], free: FreeAmounts) -> dict[str, str]:
        return {n: f"kept off {n} (free GPUs {free(n, GPU)})" for n in nodes if n in self.nodes}


def test_a_published_rule_closes_nodes_until_it_is_withdrawn() -> None:
    shared = SharedCluster(assume_timeout=30.0)
    with shared.locked():
        for name in ("big", "other"):
            shared.state.upsert_node(node(name, 8))
        shared.state.upsert_pod(nominated("held", 2, "big"))
        shared.publish_locked()
    shared.publish_rule("keep-off", KeepOff(frozenset({"big"})))

    outcome = filter_nodes(pod("p", 1), ["big", "other"], shared.snapshot(), FilterRules())
    assert outcome.passed == ["other"]
    assert outcome.failed["big"].reason is Reason.RESERVED
    # The rule sees the room nominated pods hold as taken.
    assert outcome.failed["big"].message == "kept off big (free GPUs 6)"

    shared.publish_rule("keep-off", KeepOff(frozenset()))  # nothing to say: withdrawn
    outcome = filter_nodes(pod("p", 1), ["big", "other"], shared.snapshot(), FilterRules())
    assert outcome.passed == ["big", "other"]
    assert shared.snapshot().rules == ()
