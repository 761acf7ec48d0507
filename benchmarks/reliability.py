"""Runs the long reliability scenarios and writes RELIABILITY.md.

Each scenario is a set of pytest tests run ``runs`` times. Tests report what
they measured through ``tests.support.figures.record``; this runner collects
those figures and the pass/fail counts into one table.

Run: make reliability   (RUNS=n to repeat the fault scenarios n times)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import machine

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "RELIABILITY.md"


@dataclass(frozen=True)
class Scenario:
    name: str
    tests: tuple[str, ...]
    checked: str
    runs: int = 1
    env: tuple[tuple[str, str], ...] = ()


def scenarios(runs: int) -> list[Scenario]:
    return [
        Scenario(
            "Fuzzing: schema-driven and arbitrary requests",
            ("tests/unit/api/test_fuzz.py",),
            "schemathesis (OpenAPI, positive and negative) and hypothesis (arbitrary JSON, bytes, "
            "quantities) against filter, prioritize, bind, the debug and health endpoints: no 5xx, "
            "every 4xx names what is wrong",
            env=(("FUZZ_EXAMPLES", "2000"),),
        ),
        Scenario(
            "Hostile shapes",
            ("tests/unit/api/test_hostile_shapes.py",),
            "100 000 node names with duplicates, 200 000-deep JSON, odd and empty names, bodies over "
            "the limit, missing fields, absurd quantities; peak memory of the 100 000-name call",
        ),
        Scenario(
            "CLIs on corrupt input",
            ("tests/unit/commands",),
            "pack and forecast on corrupt, truncated and wrong-shaped files: one-line error, exit 2",
        ),
        Scenario(
            "Load: 1000 concurrent calls",
            ("tests/e2e/test_load.py",),
            "1000 concurrent filter/prioritize/bind calls to one extender on the real control plane: "
            "no 5xx, no GPU over-allocation, no pod bound twice",
            runs=runs,
        ),
        Scenario(
            "Faults",
            (
                "tests/e2e/test_faults.py",
                "tests/e2e/test_leader_failover.py",
                "tests/integration/test_prometheus_outage_and_correction.py",
            ),
            "kube-apiserver restarted mid-scheduling, extender killed and restarted: nothing is "
            "bound while it is down, scheduling continues after, no pod bound twice or "
            "over-allocated; controller leader killed (SIGKILL): "
            "the standby takes the Lease within its duration; Prometheus stopped: scoring goes on",
            runs=runs,
        ),
        Scenario(
            "Binds nothing can override",
            ("tests/e2e/test_extender_down.py",),
            "the shipped, non-ignorable extender: down, GPU pods wait with a FailedScheduling "
            "event naming it and are bound soon after its restart; an agent-limit refusal keeps "
            "the pod Pending until the limit allows it; a bind for another scheduler's pod refused",
            runs=runs,
        ),
        Scenario(
            "Burst with PreBind volumes",
            ("tests/e2e/test_burst_prebind.py",),
            "300 replicas of one agent created at once, max 1 per node, on 300 nodes, each pod "
            "with a WaitForFirstConsumer local volume bound in PreBind: no node holds two, no "
            "bind refused (without the in-flight wait, in one control run: 1 node held two, "
            "2 binds refused)",
        ),
        Scenario(
            "Prometheus killed and restarted",
            ("tests/e2e/test_prometheus_restart.py",),
            "the Prometheus feeding the forecast SIGKILLed while GPU pods are scheduled, then "
            "restarted on its port and data directory: every pod is bound throughout; a second "
            "Prometheus evaluating the chart's SchedulerExtenderForecastStale rule (threshold and "
            "for: scaled down to 24 s and 4 s) sees it fire, then resolve after the restart",
            runs=runs,
        ),
        Scenario(
            "Packer faults",
            ("tests/e2e/test_packer_faults.py",),
            "a packing plan of two evictions, its executor SIGKILLed after the first: no pod lost, "
            "no GPU over-allocated, the killed process's reservations gone from the filter, the "
            "next plan made from the real state; two packer replicas, the leader SIGKILLed "
            "mid-plan: the standby takes the Lease within 15 s + 2 retry periods + 5 s and "
            "finishes; every eviction announced by the replica that made it, each pod evicted once",
            runs=runs,
        ),
        Scenario(
            "Untrusted callers",
            (
                "tests/e2e/test_mtls.py",
                "tests/e2e/test_chart.py::test_the_extender_schedules_with_the_chart_rbac_not_system_masters",
            ),
            "real kube-scheduler calls the extender over mTLS; clients without a valid certificate "
            "are refused; the extender runs with the chart's RBAC, not system:masters",
            runs=runs,
        ),
        Scenario(
            "Soak: 10 minutes, 500 nodes, pod churn",
            ("tests/e2e/test_soak.py",),
            "steady scheduling with churn: memory, cached objects and file descriptors other than "
            "API server connections stay flat (slope); those stay within the connection pools' "
            "bound and are reused by binds that do not overlap; one watch per kind",
            env=(("SOAK_SECONDS", "600"),),
        ),
    ]


def run_scenario(scenario: Scenario, figures: Path) -> tuple[int, int, float]:
    passed = failed = 0
    started = time.monotonic()
    for attempt in range(1, scenario.runs + 1):
        print(f"== {scenario.name}: run {attempt}/{scenario.runs}", flush=True)
        env = {**os.environ, **dict(scenario.env), "RELIABILITY_FIGURES": str(figures)}
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "",
            *scenario.tests,
        ]
        result = subprocess.run(command, cwd=ROOT, env=env, check=False)
        if result.returncode == 0:
            passed += 1
        else:
            failed += 1
    return passed, failed, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "3")))
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in scenarios(args.runs):
            if args.only and args.only.lower() not in scenario.name.lower():
                continue
            figures = Path(tmp) / "figures.jsonl"
            figures.write_text("")
            passed, failed, seconds = run_scenario(scenario, figures)
            measured: dict[str, list[str]] = defaultdict(list)
            for line in figures.read_text().splitlines():
                entry = json.loads(line)
                measured[entry["name"]].append(str(entry["value"]))
            shown = "; ".join(f"{k}: {', '.join(v)}" for k, v in measured.items()) or "-"
            outcome = "held" if failed == 0 else f"FAILED {failed} of {passed + failed}"
            rows.append(
                f"| {scenario.name} | {passed + failed} | {scenario.checked} | {outcome} | "
                f"{shown} | {seconds:.0f} s |"
            )
    write_report(rows)


def write_report(rows: list[str]) -> None:
    """Rows of the scenarios just run replace theirs; the others' rows are kept."""
    kept: dict[str, str] = {}
    if REPORT.exists():
        for line in REPORT.read_text().splitlines():
            if line.startswith("| ") and not line.startswith(("| scenario |", "|---")):
                kept[line.split(" | ")[0]] = line
    for row in rows:
        kept[row.split(" | ")[0]] = row
    order = [f"| {s.name}" for s in scenarios(1)]
    table = "\n".join(
        [
            "| scenario | runs | what was checked | outcome | measured | time |",
            "|---|---|---|---|---|---|",
            *sorted(
                kept.values(),
                key=lambda r: (
                    order.index(r.split(" | ")[0]) if r.split(" | ")[0] in order else len(order)
                ),
            ),
        ]
    )
    REPORT.write_text(
        "# Reliability\n\n"
        "Written by `make reliability` (benchmarks/reliability.py). The quick versions of these "
        "tests also run in `make test`; this report repeats the fault scenarios, runs the large "
        "fuzzing campaign and the 10-minute soak.\n\n"
        f"Machine: {machine()}. Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        f"{table}\n"
    )
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
