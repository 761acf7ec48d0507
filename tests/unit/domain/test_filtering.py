from __future__ import annotations

from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.filtering import FilterRules, Reason, filter_nodes
from tests.builders import node, pod


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
