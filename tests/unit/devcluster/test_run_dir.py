"""The run directory: wiped only when the launcher made it, and never used twice at once."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from scheduler_extender.devcluster.cluster import (
    MARKER,
    ClusterOptions,
    LocalCluster,
    RunDirBusyError,
)
from scheduler_extender.devcluster.processes import ComponentFailedError
from scheduler_extender.devcluster.tools import Tools


def unusable_tools(tmp_path: Path) -> Tools:
    """Binaries that cannot run: these tests must fail before launching anything."""
    missing = tmp_path / "not-a-binary"
    return Tools(
        etcd=missing, kube_apiserver=missing, kube_controller_manager=missing,
        kube_scheduler=missing, kwok=missing, helm=missing, prometheus=missing,
        promtool=missing, kubectl=missing,
        kubernetes_version="v1.36.4",
    )  # fmt: skip


def test_a_foreign_non_empty_directory_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("keep me")
    cluster = LocalCluster(ClusterOptions(run_dir=run_dir), unusable_tools(tmp_path))
    with pytest.raises(RunDirBusyError, match="not made by the local control plane"):
        cluster.start()
    assert (run_dir / "precious.txt").read_text() == "keep me"


def test_a_run_dir_in_use_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / MARKER).touch()
    (run_dir / "etcd-data").mkdir()
    with (run_dir / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        cluster = LocalCluster(ClusterOptions(run_dir=run_dir), unusable_tools(tmp_path))
        with pytest.raises(RunDirBusyError, match="another local control plane"):
            cluster.start()
    assert (run_dir / "etcd-data").is_dir()  # nothing was wiped


def test_a_previous_run_is_wiped(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "etcd-data").mkdir(parents=True)
    (run_dir / MARKER).touch()
    cluster = LocalCluster(ClusterOptions(run_dir=run_dir), unusable_tools(tmp_path))
    with pytest.raises(ComponentFailedError, match="etcd"):  # the fake binary cannot start
        cluster.start()
    assert not (run_dir / "etcd-data").exists()
    assert (run_dir / "pki" / "ca.crt").is_file()
    # The failed start released the directory: another start may claim it.
    with (run_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
