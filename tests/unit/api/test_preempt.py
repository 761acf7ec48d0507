"""The preempt verb: exact wire keys, both victim shapes, the candidates it drops."""

from __future__ import annotations

from typing import Any

from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.reservations import Reservation, ReservationBook
from scheduler_extender.domain.resources import Resources
from tests.builders import node, pod, pod_json
from tests.unit.conftest import Harness

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
    setup(harness, [movable, bare, pod("filler", 4, node="a", uid="uid-filler", owner=RS)])
    reply = harness.client.post(
        "/scheduler/preempt",
        json={
            "Pod": pod_json("big", 8, priority=100),
            "NodeNameToMetaVictims": {"a": meta(movable), "b": meta(bare)},
        },
    )
    assert reply.status_code == 200
    # The bare pod on b would be lost; a's victim fits on "spare" and is recreated there.
    assert reply.json() == {"NodeNameToMetaVictims": {"a": meta(movable)}}


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
    harness.cluster.set_reservations(
        ReservationBook.of(
            [Reservation("a", Resources.of({"nvidia.com/gpu": 4}), 1e12, pod_uid="uid-placed")]
        )
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
    harness.cluster.set_reservations(
        ReservationBook.of(
            [Reservation("b", Resources.of({"nvidia.com/gpu": 8}), 1e12, pod_uid="uid-big")]
        )
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
