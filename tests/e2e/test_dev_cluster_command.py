"""``scheduler-extender dev-cluster --demo-workload`` (what ``make demo`` runs), end to end.

It starts its own control plane next to the session's, places the demo
agents through the extender, and leaves no process behind after Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.tools import Tools
from tests.e2e.helpers import extender_decisions

STARTUP_TIMEOUT = 180.0


def processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def test_demo_places_the_agents_and_stops_cleanly_on_ctrl_c(tools: Tools, tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    replicas = sum(a.replicas for a in workload.skewed_agents())
    command = [
        sys.executable, "-m", "scheduler_extender.cli", "dev-cluster",
        "--run-dir", str(run_dir), "--nodes", "8", "--gpus", "8", "--demo-workload",
    ]  # fmt: skip
    demo = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not any("replicas per node" in line for line in lines):
            line = demo.stdout.readline()
            assert line, "dev-cluster exited early:\n" + "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "dev-cluster is too slow:\n" + "".join(lines)
        output = "".join(lines)

        assert re.search(r"local control plane ready in \d+\.\d s", output), output
        assert f"{replicas}/{replicas} agent replicas placed" in output, output
        assert f"export KUBECONFIG={run_dir.resolve() / 'kubeconfig'}" in output
        metrics_url = re.search(r"curl -s (\S+/metrics)", output)
        assert metrics_url, output
        decisions = extender_decisions(metrics_url.group(1))
        assert decisions[("bind", "bound")] == replicas
        assert processes_mentioning(str(run_dir.resolve()))  # the components are running

        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

    assert demo.returncode == 0, rest
    assert "local control plane stopped" in rest
    assert processes_mentioning(str(run_dir.resolve())) == [], "orphan processes"
    assert {p.stem for p in (run_dir / "logs").glob("*.log")} >= {
        "etcd", "kube-apiserver", "kube-controller-manager", "kwok", "kube-scheduler", "extender",
    }  # fmt: skip
    assert os.access(run_dir / "kubeconfig", os.R_OK)
