"""``scheduler-extender dev-cluster --demo`` (``make demo``): the whole loop, and what it shows.

The scenario itself is ``scheduler_extender.devcluster.demo``; this module runs it and
draws the terminal summary: per agent its current and forecast request rate, the
replicas its AgentAutoscaler wants and the ready ones, the nodes they are on; the last
scheduling decisions with each scoring policy's share; the packer's Events on the large
pod; the shares on each shared GPU (DRA); firing alerts; the Prometheus links and the
dashboard PNGs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from scheduler_extender.commands.common import fail
from scheduler_extender.devcluster import demo as scenario
from scheduler_extender.devcluster import nodes
from scheduler_extender.devcluster.cluster import ClusterOptions, LocalCluster
from scheduler_extender.devcluster.paths import RepositoryNotFoundError
from scheduler_extender.devcluster.processes import ComponentFailedError, free_port
from scheduler_extender.devcluster.prometheus import TrafficExporter
from scheduler_extender.devcluster.tools import ToolsMissingError

REFRESH = 2.0  # seconds between two summaries
HEADLESS_EVERY = 15.0  # seconds between two progress lines without a terminal
CLEAR = "\x1b[H\x1b[2J"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(args: argparse.Namespace, fleet: list[nodes.FakeNode]) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    timeline = scenario.SHORT if args.short else scenario.FULL
    command_started = time.monotonic()
    interactive = sys.stdout.isatty() and not args.headless
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.time()
    exporter = TrafficExporter(scenario.demo_traffic(timeline, started))
    prometheus_port = free_port()
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    options = ClusterOptions(
        run_dir=args.run_dir,
        extender_env=scenario.extender_env(prometheus_url, timeline, dry_run=True),
        extender_port=args.extender_port,
        # The shared-GPU pods get their GPUs from claims and request no nvidia.com/gpu.
        every_pod=True,
    )
    try:
        cluster = LocalCluster(options)
    except (ToolsMissingError, RepositoryNotFoundError) as exc:
        fail(str(exc))
    print(f"starting the demo in {cluster.run_dir} ...", flush=True)
    exporter.start()
    try:
        with cluster:
            demo = scenario.Demo(
                cluster, timeline, cluster.run_dir / "demo", exporter=exporter,
                prometheus_port=prometheus_port, started=started, fleet=fleet,
            )  # fmt: skip
            try:
                _run(demo, args, interactive, command_started)
            finally:
                demo.stop()
    except ComponentFailedError as exc:
        fail(str(exc))
    finally:
        exporter.stop()
    print("demo stopped: every process is gone", flush=True)
    return 0


def _run(
    demo: scenario.Demo, args: argparse.Namespace, interactive: bool, command_started: float
) -> None:
    try:
        print("control plane up; starting Prometheus (with hours of traffic backfilled), "
              "the controller and the dashboards ...", flush=True)  # fmt: skip
        demo.start()
        print(f"the extender forecasts {demo.report.forecast.get('agents')} agents from "
              f"{demo.report.forecast.get('url')}; deploying the agents ...", flush=True)  # fmt: skip
        demo.deploy_agents()
        demo.wait_placed()
        demo.report.first_placement_seconds = time.monotonic() - command_started
        print(f"first forecast-driven placement {demo.report.first_placement_seconds:.0f} s "
              "after the start", flush=True)  # fmt: skip
        print(header(demo), flush=True)
        deadline = None if args.exit_after is None else demo.started + args.exit_after
        last_summary = 0.0
        stage = demo.rescue_stage
        while deadline is None or time.time() < deadline:
            demo.tick()
            now = time.monotonic()
            if interactive and now - last_summary >= REFRESH:
                print(
                    CLEAR + header(demo) + "\n" + summary(demo.observe(), demo.rescue_stage),
                    flush=True,
                )
                last_summary = now
            elif not interactive and (
                now - last_summary >= HEADLESS_EVERY or stage != demo.rescue_stage
            ):
                print(progress(demo), flush=True)
                last_summary = now
            stage = demo.rescue_stage
            time.sleep(1.0)
        if not interactive:
            print(summary(demo.observe(), demo.rescue_stage), flush=True)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        if args.report is not None:
            try:
                demo.finish().write(args.report)
                print(f"report written to {args.report}", flush=True)
            except Exception as exc:  # the report must not hide why the demo stopped
                print(f"could not write the report: {exc}", file=sys.stderr, flush=True)


def header(demo: scenario.Demo) -> str:
    cluster = demo.cluster
    kubectl = cluster.tools.kubectl
    links = "\n".join(
        f"    {name:32} {url}" for name, url in scenario.graph_links(demo.server.url).items()
    )
    peak_in = demo.report.ramp_peak - time.time()
    when = f"in {peak_in:.0f} s" if peak_in > 0 else f"{-peak_in:.0f} s ago"
    return "\n".join(
        [
            f"scheduler-extender demo ({cluster.run_dir}); Ctrl-C stops everything",
            f"  kubeconfig  {cluster.kubeconfig}   (kubectl: {kubectl})",
            f"  extender    {cluster.extender_url}   controller metrics "
            f"http://127.0.0.1:{demo.controller_port}/metrics",
            f"  Prometheus  {demo.server.url}  (HTTP API; the build from the Go module has no web "
            "UI: paste the queries into any Prometheus or Grafana)",
            "  key queries:",
            links,
            f"  one day of traffic lasts {demo.timeline.season:.0f} s; {scenario.RAMP_AGENT} "
            f"ramps up to its peak {when}",
            f"  dashboards  {demo.dashboards_dir}/<name>.png, redrawn every "
            f"{scenario.DASHBOARD_EVERY:.0f} s; logs in {cluster.logs_dir}/",
        ]
    )


def _num(value: float | int | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary(seen: scenario.Observation, rescue_stage: str) -> str:
    """The refreshing part of the screen."""
    lines = [
        "",
        f"t={seen.elapsed:4.0f} s   {'agent':9} {'req/s':>7} {'forecast':>9} {'wanted':>7} "
        f"{'replicas':>9} {'ready':>6}  nodes",
    ]
    for row in seen.agents:
        spread = Counter(row.nodes)
        where = ", ".join(f"{n}" + (f"x{c}" if c > 1 else "") for n, c in sorted(spread.items()))
        lines.append(
            f"{'':12}{row.agent:9} {_num(row.rate):>7} {_num(row.forecast):>9} "
            f"{_num(row.wanted, 0):>7} {row.replicas:>9} {row.ready:>6}  {where}"
        )
    lines += ["", "last scheduling decisions (the extender's best node, each policy's share):"]
    for decision in seen.decisions:
        shares = " ".join(f"{k}={v:+.1f}" for k, v in sorted(decision.policies.items()))
        lines.append(f"  {decision.pod:38} -> {decision.node:14} {decision.score:5.1f}  {shares}")
    if not seen.decisions:
        lines.append("  (none yet)")
    lines += ["", f"packer rescue of {scenario.BATCH_NAMESPACE}/{scenario.LARGE_POD} "
              f"(8 GPUs): {rescue_stage}"]  # fmt: skip
    for reason, message in seen.packer_events[-4:]:
        lines.append(f"  {reason:22} {message[:110]}")
    if seen.large_pod_node:
        lines.append(f"  placed on {seen.large_pod_node}")
    lines += ["", f"shared GPUs (DRA: {scenario.SHARED_NAMESPACE}/{scenario.SHARED_DEPLOYMENT}, "
              f"a {scenario.SHARE} share of a {scenario.SHARED_PRODUCT} per replica):"]  # fmt: skip
    for device, consumed in seen.shared.items():
        count = f"{len(consumed)} share{'' if len(consumed) == 1 else 's'}"
        lines.append(f"  {device:24} {count}, {sum(consumed) / 2**30:.0f}Gi taken")
    if not seen.shared:
        lines.append("  (no claim allocated yet)")
    lines.append("")
    lines.append(f"firing alerts: {', '.join(seen.firing_alerts) or 'none'}")
    if seen.dashboards:
        names = ", ".join(p.name for p in seen.dashboards)
        lines.append(f"dashboards: {seen.dashboards[0].parent}/ {names}")
    else:
        lines.append("dashboards: (first drawing in progress)")
    return "\n".join(lines)


def progress(demo: scenario.Demo) -> str:
    ramp = demo.report.ramp[-1] if demo.report.ramp else None
    where = (
        f"{scenario.RAMP_AGENT} {ramp.rate:.0f} req/s, {ramp.replicas} replicas" if ramp else "-"
    )
    return (
        f"t={time.time() - demo.started:4.0f} s  {where}; rescue: {demo.rescue_stage}; "
        f"dashboards: {len(list(Path(demo.dashboards_dir).glob('*.png')))} PNG"
    )
