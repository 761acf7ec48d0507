"""The plan's JSON form (the schema documented in the README)."""

from __future__ import annotations

import json

from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.solver import SolveOptions
from tests.unit.domain.packing.scenarios import node, pod


def test_the_json_plan_carries_tiers_actions_and_solver_facts() -> None:
    nodes = [node("a", gpu=8, cpu=16), node("b", gpu=8, cpu=16)]
    pods = [
        pod("low-1", gpu=4, on="a", owner="low"),
        pod("low-2", gpu=4, on="b", owner="low"),
        pod("bare", on="a", owner=None),
        pod("trainer", gpu=8, priority=100, owner="trainer"),
        pod("spread", owner="s", has_pod_level_constraints=True),
    ]
    plan = pack(nodes, pods, policy=PackingPolicy(), options=SolveOptions(time_limit=2, workers=1))
    doc = json.loads(json.dumps(plan.to_json()))
    assert doc["apiVersion"] == "scheduler-extender.io/v1alpha1"
    assert doc["kind"] == "PackingPlan"
    assert doc["status"] == "OPTIMAL"
    assert doc["optimal"] is True
    assert doc["improvesOnDefault"] is True
    assert doc["tiers"][0] == {
        "priority": 100,
        "pods": 1,
        "placedBefore": 0,
        "placedDefault": 0,
        "placedAfter": 1,
        "placements": 1,
        "moves": 0,
        "evictions": 0,
        "provenOptimal": True,
    }
    move = next(a for a in doc["actions"] if a["type"] == "move")
    assert set(move) == {"type", "pod", "uid", "priority", "from", "to", "owner", "templateHash"}
    assert move["owner"] == {"kind": "ReplicaSet", "name": "low", "uid": "uid-low"}
    place = next(a for a in doc["actions"] if a["type"] == "place")
    assert place == {
        "type": "place",
        "pod": "default/trainer",
        "uid": "uid-trainer",
        "priority": 100,
        "node": move["from"],
    }
    assert doc["pinned"] == {"no_controller": 1}
    assert doc["skipped"] == [
        {"pod": "default/spread", "uid": "uid-spread", "reason": "pod_level_constraints"}
    ]
    solver = doc["solver"]
    assert solver["timeLimitSeconds"] == 2
    assert solver["workers"] == 1
    assert solver["totalNodes"] == 2
    assert solver["groups"] == 2
    assert {s["stage"] for s in solver["stages"]} <= {"moves", "place", "disrupt"}
    assert solver["firstImprovementSeconds"] is not None
