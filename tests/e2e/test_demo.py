"""``make demo``'s scenario, headless and shortened (``dev-cluster --demo --short``), end to end.

The command starts its own control plane, Prometheus (hours of traffic backfilled), the
controller, the packer and the dashboard renderer, runs past the ramp agent's peak, is
stopped with Ctrl-C (SIGINT) and writes a report. The test checks what the demo claims to
show: the forecast comes from Prometheus, the first placement is quick, the AgentAutoscaler raised the ramp agent's
replicas before the ramp peaked (and before the load needed them), the packer's plan
placed the large pod after a dry run, every shared-GPU replica got a share of a device
(read from the claims kube-scheduler allocated) and no device holds more than its memory,
every dashboard PNG was drawn with data in every panel, and no process outlives the command.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scheduler_extender.devcluster import demo
from scheduler_extender.devcluster.dashboards import dashboard_files
from scheduler_extender.devcluster.tools import Tools
from tests.e2e.test_dev_cluster_command import processes_mentioning

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STOP_AT = demo.SHORT.ramp_peak + 20.0  # seconds after the traffic's start
PROGRESS = re.compile(r"^t=\s*(\d+) s")


def test_the_demo_shows_forecast_autoscaling_rescue_and_dashboards(
    tools: Tools, tmp_path: Path
) -> None:
    run_dir = tmp_path / "demo"
    report_file = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "scheduler_extender.cli", "dev-cluster",
        "--run-dir", str(run_dir), "--demo", "--short", "--headless",
        "--report", str(report_file),
    ]  # fmt: skip
    demo_process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: list[str] = []
    try:
        assert demo_process.stdout is not None
        deadline = time.monotonic() + 600
        # Past the ramp's peak (the progress lines count from the traffic's start), Ctrl-C.
        while not any(
            (m := PROGRESS.match(line)) and float(m.group(1)) >= STOP_AT for line in lines
        ):
            line = demo_process.stdout.readline()
            assert line, "the demo exited early:\n" + "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "the demo is too slow:\n" + "".join(lines)
        demo_process.send_signal(signal.SIGINT)
        rest, _ = demo_process.communicate(timeout=180)
    finally:
        if demo_process.poll() is None:
            demo_process.kill()
            demo_process.wait()
    output = "".join(lines) + rest
    assert demo_process.returncode == 0, output
    assert "stopping ..." in rest, output
    assert "demo stopped: every process is gone" in rest, output
    assert processes_mentioning(str(run_dir.resolve())) == [], "orphan processes"
    report: dict[str, Any] = json.loads(report_file.read_text())

    # The forecast the extender places by comes from the demo's Prometheus.
    forecast = report["forecast"]
    assert forecast["source"] == "prometheus", forecast
    assert forecast["url"].startswith("http://127.0.0.1:"), forecast
    assert forecast["agents"] >= len(demo.AGENTS), forecast
    assert report["first_placement_seconds"] < 120, output

    # The autoscaler raised the ramp agent ahead of the ramp.
    peak = report["ramp_peak"]
    samples = [(s["at"], s["replicas"], s["rate"]) for s in report["ramp"]]
    before_peak = [(t, r, rate) for t, r, rate in samples if t <= peak]
    assert before_peak, samples
    needed_at_peak = demo.replicas_needed(max(rate for _, _, rate in samples))
    first_replicas = before_peak[0][1]
    assert needed_at_peak > first_replicas, samples
    reached = next((t for t, r, _ in before_peak if r >= needed_at_peak), None)
    assert reached is not None, f"never {needed_at_peak} replicas before the peak: {samples}"
    # ... and before the load needed that many.
    needed = next(t for t, _, rate in samples if demo.replicas_needed(rate) >= needed_at_peak)
    assert reached < needed, (reached, needed, samples)

    # The packer planned in dry run first, then its plan placed the large pod.
    reasons = [reason for reason, _ in report["packer_events"]]
    assert "PackingDryRun" in reasons, report["packer_events"]
    assert "PackingPlan" in reasons, report["packer_events"]
    assert reasons.index("PackingDryRun") < reasons.index("PackingPlan"), reasons
    assert (report["large_pod_node"] or "").startswith(demo.BATCH_POOL), report

    # Every shared-GPU replica holds a share (from its claim's allocation), on the shared
    # nodes only, and no device is allocated more than its memory.
    shared = report["shared"]
    assert sum(len(taken) for taken in shared.values()) == demo.SHARED_REPLICAS, shared
    assert all(device.startswith(demo.SHARED_POOL) for device in shared), shared
    assert all(sum(taken) <= report["shared_capacity"] for taken in shared.values()), shared

    # Every dashboard was drawn, every panel with data.
    drawn = {Path(path).stem: empty for path, empty in report["dashboards"].items()}
    assert set(drawn) == {path.stem for path in dashboard_files()}
    for path in report["dashboards"]:
        assert Path(path).read_bytes().startswith(b"\x89PNG"), path
    assert {name: empty for name, empty in drawn.items() if empty} == {}
