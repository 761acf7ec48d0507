"""``scheduler-extender pack``: a kubectl List in, a plan on stdout, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduler_extender import cli
from tests.builders import node_json, pod_json


def owner(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": name,
        "uid": f"uid-{name}",
        "controller": True,
    }


def snapshot(tmp_path: Path, items: list[dict[str, Any]]) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


FRAGMENTED = [
    node_json("a", 8),
    node_json("b", 8),
    pod_json("low-1", 4, node="a", priority=1, owner=owner("low")),
    pod_json("low-2", 4, node="b", priority=1, owner=owner("low")),
    pod_json("trainer", 8, priority=100, owner=owner("trainer")),
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["pack", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_plan_is_printed_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "--input",
        str(snapshot(tmp_path, FRAGMENTED)),
        "--time-limit",
        "2",
        "--workers",
        "1",
    )
    assert status == 0
    plan = json.loads(out)
    assert plan["kind"] == "PackingPlan"
    assert plan["improvesOnDefault"] is True
    assert sorted(a["type"] for a in plan["actions"]) == ["move", "place"]
    assert plan["solver"]["timeLimitSeconds"] == 2.0
    assert plan["solver"]["workers"] == 1


def test_disruption_budgets_in_the_list_are_honoured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "low", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {}}},
        "status": {"disruptionsAllowed": 0},
    }
    status, out, _ = run(capsys, "--input", str(snapshot(tmp_path, [*FRAGMENTED, pdb])))
    assert status == 0
    plan = json.loads(out)
    assert plan["actions"] == []
    assert plan["pinned"] == {"disruption_budget": 2}


def test_other_schedulers_pods_can_be_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = snapshot(tmp_path, FRAGMENTED)  # the builders' pods use "gpu-scheduler"
    status, out, _ = run(capsys, "--input", str(path), "--scheduler-name", "someone-else")
    assert status == 0
    plan = json.loads(out)
    assert plan["actions"] == []
    assert [s["reason"] for s in plan["skipped"]] == ["other_scheduler"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        ('{"kind": "Pod"}', "expected a v1 List"),
        ('{"kind": "List", "items": [42]}', "items[0] is not an object"),
        ('{"kind": "List", "items": []}', "holds no Node"),
    ],
)
def test_unreadable_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    status, out, err = run(capsys, "--input", str(path))
    assert status == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_an_invalid_item_is_named_with_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = pod_json("broken", 1, owner=owner("x"))
    broken["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    status, _, err = run(capsys, "--input", str(snapshot(tmp_path, [node_json("a"), broken])))
    assert status == 2
    assert "items[1] (Pod broken)" in err
    assert "spec.containers.0.resources.requests.cpu" in err


def test_a_missing_file_and_bad_limits_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "--input", str(tmp_path / "absent.json"))
    assert status == 2
    assert "cannot read" in err
    path = str(snapshot(tmp_path, FRAGMENTED))
    assert run(capsys, "--input", path, "--time-limit", "0")[0] == 2
    assert run(capsys, "--input", path, "--workers", "0")[0] == 2
