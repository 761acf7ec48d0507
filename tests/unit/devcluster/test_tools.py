from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scheduler_extender.devcluster.paths import repo_root
from scheduler_extender.devcluster.tools import (
    TOOLS,
    ToolsMissingError,
    cache_dir,
    locate_prometheus,
    locate_tools,
    pinned_version,
    tool_dirs,
)


def test_pinned_version_reads_block_and_single_line_requires() -> None:
    go_mod = """module x
require (
\tgithub.com/a/b v1.0.0 // indirect
\tk8s.io/kubernetes v1.36.4
)
require sigs.k8s.io/kwok v0.8.0
replace k8s.io/api => k8s.io/api v0.36.4
"""
    assert pinned_version(go_mod, "k8s.io/kubernetes") == "v1.36.4"
    assert pinned_version(go_mod, "sigs.k8s.io/kwok") == "v0.8.0"
    assert pinned_version(go_mod, "k8s.io/api") is None  # only a replace line names it first
    assert pinned_version(go_mod, "helm.sh/helm/v3") is None


def test_cache_dir_follows_the_build_script_precedence() -> None:
    assert cache_dir({"SCHEDULER_EXTENDER_TOOLS_DIR": "/x", "XDG_CACHE_HOME": "/y"}) == Path("/x")
    assert cache_dir({"XDG_CACHE_HOME": "/y", "HOME": "/h"}) == Path("/y/scheduler-extender/bin")
    assert cache_dir({"HOME": "/h"}) == Path("/h/.cache/scheduler-extender/bin")


def test_the_launcher_and_build_script_resolve_the_same_directories(tmp_path: Path) -> None:
    env = {**os.environ, "SCHEDULER_EXTENDER_TOOLS_DIR": str(tmp_path)}
    script = repo_root() / "hack" / "build-tools.sh"
    out = subprocess.run(
        ["bash", str(script), "--print-dirs"], env=env, capture_output=True, text=True, check=True
    ).stdout
    from_script = {
        line.split()[0]: (line.split()[1], Path(line.split()[2])) for line in out.splitlines()
    }
    assert from_script == tool_dirs(tmp_path)
    assert set(from_script) == set(TOOLS)


def test_missing_binaries_are_named_with_the_way_to_build_them(tmp_path: Path) -> None:
    with pytest.raises(ToolsMissingError) as raised:
        locate_tools(tmp_path)
    message = str(raised.value)
    assert "make tools" in message
    for binary in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "helm",
        "prometheus",
        "promtool",
    ):
        assert binary in message


def test_complete_cache_is_located(tmp_path: Path) -> None:
    for tool, (_version, directory) in tool_dirs(tmp_path).items():
        directory.mkdir(parents=True)
        for binary in TOOLS[tool][1]:
            path = directory / binary
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)
    tools = locate_tools(tmp_path)
    assert tools.kube_scheduler == tool_dirs(tmp_path)["kubernetes"][1] / "kube-scheduler"
    assert tools.kubernetes_version.startswith("v1.")


def test_prometheus_alone_is_located_or_named_missing(tmp_path: Path) -> None:
    with pytest.raises(ToolsMissingError, match=r"promtool .*make tools"):
        locate_prometheus(tmp_path)
    _version, directory = tool_dirs(tmp_path)["prometheus"]
    directory.mkdir(parents=True)
    for binary in ("prometheus", "promtool"):
        (directory / binary).write_text("#!/bin/sh\n")
        (directory / binary).chmod(0o755)
    assert locate_prometheus(tmp_path) == (directory / "prometheus", directory / "promtool")
