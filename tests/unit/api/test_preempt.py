"""The preempt verb: exact wire keys, both victim shapes, the candidates it drops."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.reservations import Reservation, ReservationBook
from scheduler_extender.domain.resources import Resources
from tests.builders import node, pod, pod_json
from tests.unit.conftest import Harness, make_harness

RS = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "name": "low",
    "uid": "uid-rs-low",
    "controller": True,
}


def setup(h: Harness, pods: list[Pod]) -> None:
    with h.cluster.locked():
        for name, gpus in (("a", 8), ("b", 8), ("spare", 4)):
            h.cluster.state.upsert_node(node(name, gpus))
        for p in pods:
            h.cluster.state.upsert_pod(p)
        h.cluster.publish_locked()


def meta(*victims: Pod) -> dict[str, Any]:
    return {"Pods": [{"UID": v.uid} for v in victims], "NumPDBViolations": 0}


def test_meta_victims_that_can_move_are_preferred_to_ones_that_would_be_lost(
    harness: Harness,
) -> None:
    movable = pod("movable", 4, node="a", uid="uid-movable", owner=RS, priority=1)
    bare = pod("bare", 4, node="b", uid="uid-bare", priority=1)
    setup(harness, [movable, bare])
    reply = harness.client.post(
        "/scheduler/preempt",
        json={
            "Pod": pod_json("big", 8, priority=100),
            "NodeNameToMetaVictims": {"a": meta(movable), "b": meta(bare)},
        },
    )
    assert reply.status_code == 200
    # Both would leave room for 8 GPUs. The bare pod on b would be lost; a's victim
    # fits on "spare" and is recreated there.
    assert reply.json() == {"NodeNameToMetaVictims": {"a": meta(movable)}}


def test_a_stale_cache_preempts_nothing_and_says_why(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = pod("v", 4, node="a", uid="uid-v", owner=RS, priority=1)
    setup(harness, [victim])
    body = {"Pod": pod_json("big", 8, priority=100), "NodeNameToMetaVictims": {"a": meta(victim)}}
    monkeypatch.setattr(harness.cluster, "staleness", lambda: 31.0)
    reply = harness.client.post("/scheduler/preempt", json=body)
    # Any status but 200 is the extender's error to kube-scheduler: no victim is taken.
    assert reply.status_code == 503
    assert "cut off from the API server for 31 s" in reply.json()["error"]
    monkeypatch.setattr(harness.cluster, "staleness", lambda: 29.0)
    assert harness.client.post("/scheduler/preempt", json=body).status_code == 200


def test_full_victims_are_accepted_and_returned_as_uids(harness: Harness) -> None:
    victim = pod("v", 4, node="a", uid="uid-v", owner=RS)
    setup(harness, [victim])
    body = {
        "Pod": pod_json("big", 8, priority=100),
        "NodeNameToVictims": {
            "a": {
                "Pods": [pod_json("v", 4, node="a", uid="uid-v", owner=RS)],
                "NumPDBViolations": 1,
            }
        },
    }
    reply = harness.client.post("/scheduler/preempt", json=body)
    assert reply.json() == {
        "NodeNameToMetaVictims": {"a": {"Pods": [{"UID": "uid-v"}], "NumPDBViolations": 1}}
    }


def test_pods_an_active_plan_is_placing_are_never_victims(harness: Harness) -> None:
    placed = pod("placed", 4, node="a", uid="uid-placed", owner=RS)
    other = pod("other", 4, node="b", uid="uid-other", owner=RS)
    setup(harness, [placed, other])
    harness.cluster.publish_rule(
        "reservations",
        ReservationBook.of(
            [Reservation("a", Resources.of({"nvidia.com/gpu": 4}), 1e12, pod_uid="uid-placed")]
        ),
    )
    reply = harness.client.post(
        "/scheduler/preempt",
        json={
            "Pod": pod_json("big", 8, priority=100),
            "NodeNameToMetaVictims": {"a": meta(placed), "b": meta(other)},
        },
    )
    assert list(reply.json()["NodeNameToMetaVictims"]) == ["b"]


def test_a_preemptor_with_a_plan_keeps_only_its_reserved_nodes(harness: Harness) -> None:
    x = pod("x", 4, node="a", uid="uid-x", owner=RS)
    y = pod("y", 4, node="b", uid="uid-y", owner=RS)
    setup(harness, [x, y])
    harness.cluster.publish_rule(
        "reservations",
        ReservationBook.of(
            [Reservation("b", Resources.of({"nvidia.com/gpu": 8}), 1e12, pod_uid="uid-big")]
        ),
    )
    reply = harness.client.post(
        "/scheduler/preempt",
        json={
            "Pod": pod_json("big", 8, uid="uid-big", priority=100),
            "NodeNameToMetaVictims": {"a": meta(x), "b": meta(y)},
        },
    )
    assert list(reply.json()["NodeNameToMetaVictims"]) == ["b"]


def test_unknown_victim_uids_leave_the_candidates_alone(harness: Harness) -> None:
    setup(harness, [])
    ghost = {"Pods": [{"UID": "nobody"}], "NumPDBViolations": 0}
    reply = harness.client.post(
        "/scheduler/preempt",
        json={"Pod": pod_json("big", 8), "NodeNameToMetaVictims": {"a": ghost}},
    )
    assert reply.json() == {"NodeNameToMetaVictims": {"a": ghost}}


def test_a_request_without_victims_is_a_400_naming_the_field(harness: Harness) -> None:
    reply = harness.client.post("/scheduler/preempt", json={"Pod": pod_json("big", 8)})
    assert reply.status_code == 400
    assert "NodeNameToVictims" in reply.json()["error"]
    bad = harness.client.post("/scheduler/preempt", json={"NodeNameToMetaVictims": {}})
    assert bad.status_code == 400
    assert "Pod" in bad.json()["error"]


def preempt(h: Harness, preemptor: dict[str, Any], candidates: dict[str, Any]) -> dict[str, Any]:
    reply = h.client.post(
        "/scheduler/preempt", json={"Pod": preemptor, "NodeNameToMetaVictims": candidates}
    )
    assert reply.status_code == 200
    answer: dict[str, Any] = reply.json()["NodeNameToMetaVictims"]
    return answer


def test_victims_of_another_agent_do_not_help_a_node_at_the_agent_limit() -> None:
    h = make_harness(rules=FilterRules(max_agent_replicas_per_node=1))
    mine = pod("mine", 2, node="a", uid="uid-mine", agent="x")
    theirs = pod("theirs", 6, node="a", uid="uid-theirs", agent="y")
    other = pod("other", 8, node="b", uid="uid-other", agent="y")
    setup(h, [mine, theirs, other])
    answer = preempt(
        h, pod_json("new", 6, agent="x", priority=100), {"a": meta(theirs), "b": meta(other)}
    )
    # On a, x would still run one replica (the limit) once "theirs" is gone.
    assert answer == {"b": meta(other)}


def test_a_node_whose_room_a_plan_reserved_for_another_pod_is_dropped(harness: Harness) -> None:
    low_a = pod("low-a", 8, node="a", uid="uid-low-a")
    low_b = pod("low-b", 8, node="b", uid="uid-low-b")
    setup(harness, [low_a, low_b])
    harness.cluster.publish_rule(
        "reservations",
        ReservationBook.of(
            [Reservation("a", Resources.of({"nvidia.com/gpu": 8}), 1e12, pod_uid="uid-pending")]
        ),
    )
    answer = preempt(
        harness, pod_json("big", 8, priority=100), {"a": meta(low_a), "b": meta(low_b)}
    )
    assert answer == {"b": meta(low_b)}


def test_victims_that_free_enough_gpus_are_returned_unchanged(harness: Harness) -> None:
    v1 = pod("v1", 3, node="b", uid="uid-v1")
    v2 = pod("v2", 3, node="b", uid="uid-v2")
    # a's victim could move to "spare", but a would still be 2 GPUs short without it:
    # that must not make b, whose victims do free enough, look worse.
    movable = pod("movable", 2, node="a", uid="uid-movable", owner=RS)
    setup(
        harness,
        [
            v1,
            v2,
            pod("keep", 2, node="b", uid="uid-keep"),
            movable,
            pod("busy", 4, node="a", uid="uid-busy"),
        ],
    )
    victims = {"Pods": [{"UID": "uid-v1"}, {"UID": "uid-v2"}], "NumPDBViolations": 2}
    answer = preempt(harness, pod_json("big", 6, priority=100), {"a": meta(movable), "b": victims})
    assert answer == {"b": victims}


def test_gpus_held_by_our_own_unconfirmed_binds_stay_taken(harness: Harness) -> None:
    low = pod("low", 4, node="a", uid="uid-low")
    setup(harness, [low])
    with harness.cluster.locked():  # bound by us a moment ago; the watch has not seen it
        harness.cluster.assume_locked(pod("ours", 4, uid="uid-ours"), "a")
    answer = preempt(harness, pod_json("big", 8, priority=100), {"a": meta(low)})
    assert answer == {}


def test_a_node_whose_total_capacity_is_below_the_request_is_dropped(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    small = pod("small", 4, node="spare", uid="uid-small")
    low = pod("low", 8, node="a", uid="uid-low")
    setup(harness, [small, low])
    caplog.set_level(logging.DEBUG, logger="scheduler_extender.api.verbs")
    answer = preempt(
        harness, pod_json("big", 8, priority=100), {"spare": meta(small), "a": meta(low)}
    )
    assert answer == {"a": meta(low)}
    (record,) = [r for r in caplog.records if r.name == "scheduler_extender.api.verbs"]
    assert record.levelno == logging.DEBUG
    assert "dropped candidate spare (unresolvable)" in record.getMessage()
    assert "total capacity is below the request" in record.getMessage()


@pytest.mark.parametrize("cached_on", ["spare", None])
def test_full_victims_the_cache_does_not_count_on_the_node_free_nothing(
    harness: Harness, cached_on: str | None
) -> None:
    """A full victim the cache places on another node (or does not know) gives no room back."""
    w = pod("w", 8, node="b", uid="uid-w")
    cached = [pod("v", 4, node=cached_on, uid="uid-v")] if cached_on else []
    setup(harness, [pod("busy", 8, node="a", uid="uid-busy"), w, *cached])
    body = {
        "Pod": pod_json("big", 8, priority=100),
        "NodeNameToVictims": {
            "a": {"Pods": [pod_json("v", 8, node="a", uid="uid-v")], "NumPDBViolations": 0},
            "b": {"Pods": [pod_json("w", 8, node="b", uid="uid-w")], "NumPDBViolations": 1},
        },
    }
    reply = harness.client.post("/scheduler/preempt", json=body)
    assert reply.status_code == 200
    # "busy" still fills a by our accounting; b's victim is counted there and frees 8.
    assert reply.json() == {
        "NodeNameToMetaVictims": {"b": {"Pods": [{"UID": "uid-w"}], "NumPDBViolations": 1}}
    }
