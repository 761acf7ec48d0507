"""``scheduler-extender dashboards``: the chart's Grafana dashboards as PNG files, without Grafana.

Every panel's queries run against a Prometheus over the last ``--minutes``; one PNG per dashboard
goes to ``--out-dir``. ``--every`` redraws them until Ctrl-C (``make demo`` does it every minute).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from scheduler_extender.commands.common import fail
from scheduler_extender.devcluster.paths import RepositoryNotFoundError

DEFAULT_OUT_DIR = Path("build/dashboards")


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "dashboards",
        help="render the chart's Grafana dashboards to PNG from a Prometheus (no Grafana needed)",
        description="Run every panel's PromQL of helm/scheduler-extender/dashboards/*.json "
        "against --prometheus and draw each dashboard, on its own grid, to <out-dir>/<name>.png.",
    )
    p.add_argument("--prometheus", required=True, metavar="URL",
                   help="Prometheus base URL, e.g. http://127.0.0.1:9090")  # fmt: skip
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                   help=f"where the PNG files go (default {DEFAULT_OUT_DIR})")  # fmt: skip
    p.add_argument("--dashboard", type=Path, action="append", dest="dashboard_files",
                   metavar="FILE", help="only this dashboard JSON (repeatable; default: all)")  # fmt: skip
    p.add_argument("--minutes", type=float, default=60.0, help="time range (default 60)")
    p.add_argument("--rate-interval", default="2m",
                   help="what Grafana's $__rate_interval becomes (default 2m)")  # fmt: skip
    p.add_argument("--every", type=float, metavar="SECONDS",
                   help="redraw every SECONDS until Ctrl-C (default: once)")  # fmt: skip
    p.set_defaults(run=run, settings_fields=[])


def run(args: argparse.Namespace) -> int:
    if args.minutes <= 0:
        fail("--minutes must be positive")
    if args.every is not None and args.every <= 0:
        fail("--every must be positive")
    if not args.prometheus.startswith(("http://", "https://")):
        fail(f"--prometheus: expected an http:// or https:// URL, got {args.prometheus!r}")
    for path in args.dashboard_files or []:
        if not path.is_file():
            fail(f"--dashboard: {path} does not exist")
    try:
        from scheduler_extender.devcluster import dashboards
    except RepositoryNotFoundError as exc:
        fail(str(exc))
    try:
        while True:
            try:
                rendered = dashboards.render_all(
                    args.prometheus, args.out_dir, dashboards=args.dashboard_files,
                    minutes=args.minutes, rate_interval=args.rate_interval,
                )  # fmt: skip
            except (httpx.HTTPError, RuntimeError) as exc:
                fail(f"cannot draw the dashboards from {args.prometheus}: {exc}")
            for item in rendered:
                note = f"  (no data: {', '.join(item.empty)})" if item.empty else ""
                print(f"wrote {item.path}{note}", flush=True)
            if args.every is None:
                return 0
            time.sleep(args.every)
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 0
