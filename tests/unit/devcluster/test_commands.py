"""``fake-nodes`` and ``dev-cluster``: argument errors are CLI messages (status 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler_extender.cli import main


def test_fake_nodes_rejects_an_unknown_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["fake-nodes", "--kubeconfig", str(tmp_path / "k"), "--gpus", "3"])
    assert status == 2
    assert "--gpus" in capsys.readouterr().err


def test_fake_nodes_needs_a_kubeconfig_that_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["fake-nodes", "--kubeconfig", str(tmp_path / "missing"), "--count", "1"])
    assert status == 2
    assert "does not exist" in capsys.readouterr().err


def test_dev_cluster_rejects_an_unknown_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-cluster", "--gpus", "16"]) == 2
    assert "--gpus" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--demo", "--demo-workload"], "exclude each other"),
        (["--short"], "go with --demo"),
        (["--report", "r.json"], "go with --demo"),
        (["--demo", "--no-extender"], "--demo needs the extender"),
        (["--demo", "--exit-after", "0"], "--exit-after must be positive"),
        (["--demo", "--nodes", "4"], "--demo needs at least 48 GPUs"),
        (["--demo", "--dra"], "--dra does not go with --demo"),
    ],
)
def test_dev_cluster_demo_flags_are_checked_before_anything_starts(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dev-cluster", "--run-dir", str(tmp_path / "run"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
