"""The chart's Grafana dashboards as PromQL, and PNG renderings of them without Grafana.

``scheduler-extender dashboards --prometheus URL --out-dir DIR`` (``make dashboards``) runs every
panel's queries of every dashboard in ``helm/scheduler-extender/dashboards`` against that
Prometheus over the last hour and draws them with matplotlib, laid out on the dashboard's own grid,
one ``<dashboard>.png`` per dashboard; ``--every SECONDS`` redraws them until Ctrl-C. ``make demo``
does the same every minute. The e2e tests use ``panels``, ``expand`` and ``query_range`` to run
the same queries.

Grafana-only variables are expanded the way Grafana would with "All" selected: a query variable
with ``allValue`` becomes that regex, a text box its default, ``$__rate_interval`` a fixed window.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from scheduler_extender.devcluster.paths import repo_root

CHART = repo_root() / "helm" / "scheduler-extender"
DASHBOARDS = CHART / "dashboards"
MAIN_DASHBOARD = DASHBOARDS / "scheduling.json"
GRID_COLUMNS = 24
ROW_INCHES = 0.42  # the height of one grid row in the PNG


@dataclass(frozen=True, slots=True)
class Query:
    expr: str  # as written in the dashboard, with Grafana variables
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    id: int
    title: str
    kind: str  # timeseries, stat, heatmap
    unit: str
    grid: tuple[int, int, int, int]  # x, y, w, h on Grafana's 24-column grid
    queries: tuple[Query, ...]


def load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panels(dashboard: dict[str, Any]) -> list[Panel]:
    """Every panel that queries Prometheus, including those inside collapsed rows."""
    out: list[Panel] = []
    for raw in _walk(dashboard.get("panels", [])):
        if raw.get("type") == "row":
            continue
        grid = raw["gridPos"]
        out.append(
            Panel(
                id=raw["id"],
                title=raw["title"],
                kind=raw["type"],
                unit=raw.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"),
                grid=(grid["x"], grid["y"], grid["w"], grid["h"]),
                queries=tuple(
                    Query(t["expr"], t.get("legendFormat", "")) for t in raw.get("targets", [])
                ),
            )
        )
    return out


def _walk(raw_panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for raw in raw_panels:
        yield raw
        yield from _walk(raw.get("panels", []))


def expand(expr: str, dashboard: dict[str, Any], *, rate_interval: str = "2m") -> str:
    """``expr`` with the dashboard's variables as Grafana fills them when "All" is selected."""
    values = {"__rate_interval": rate_interval, "__interval": rate_interval}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            values[var["name"]] = var.get("allValue") or ".*"
        elif var.get("type") in ("textbox", "constant"):
            values[var["name"]] = var["query"]

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"query uses ${name}, which the dashboard does not define: {expr}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, expr)


def legend(template: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.strip() or ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    times: tuple[float, ...]
    values: tuple[float, ...]


def query_range(
    client: httpx.Client, expr: str, *, start: float, end: float, step: float, legend_format: str
) -> list[Series]:
    response = client.get(
        "/api/v1/query_range", params={"query": expr, "start": start, "end": end, "step": step}
    )
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {expr!r}: {body.get('error', response.text)}")
    out = []
    for result in body["data"]["result"]:
        points = [(float(t), float(v)) for t, v in result["values"]]
        out.append(
            Series(
                legend(legend_format, result["metric"]),
                tuple(t for t, _ in points),
                tuple(v for _, v in points),
            )
        )
    return out


def render_png(
    dashboard: dict[str, Any],
    prometheus_url: str,
    out: Path,
    *,
    minutes: float = 60,
    rate_interval: str = "2m",
) -> list[str]:
    """Draws every panel; returns the titles of panels whose queries returned no finite value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = time.time()
    start = end - minutes * 60
    step = max(minutes * 60 / 240, 5.0)
    found = panels(dashboard)
    rows = max(p.grid[1] + p.grid[3] for p in found)
    fig = plt.figure(figsize=(20, rows * ROW_INCHES))
    fig.suptitle(dashboard["title"], fontsize=16, fontweight="bold")
    empty: list[str] = []
    with httpx.Client(base_url=prometheus_url, timeout=30.0) as client:
        for panel in found:
            series = [
                s
                for q in panel.queries
                for s in query_range(
                    client,
                    expand(q.expr, dashboard, rate_interval=rate_interval),
                    start=start,
                    end=end,
                    step=step,
                    legend_format=q.legend,
                )
            ]
            ax = fig.add_axes(_box(panel.grid, rows))
            ax.set_title(panel.title, fontsize=10, loc="left")
            if not any(math.isfinite(v) for s in series for v in s.values):
                empty.append(panel.title)  # no series, or only NaN / infinite values
                ax.text(0.5, 0.5, "no data", ha="center", va="center", color="grey")
                ax.set_xticks([])
                ax.set_yticks([])
            elif panel.kind == "stat":
                _stat(ax, series[-1], panel.unit)
            elif panel.kind == "heatmap":
                _heatmap(fig, ax, series)
            else:
                _lines(ax, series, panel.unit)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return empty


def _box(grid: tuple[int, int, int, int], rows: int) -> tuple[float, float, float, float]:
    """A panel's rectangle in figure coordinates, leaving room for titles and tick labels.

    The figure is ``rows * ROW_INCHES`` high; the margins are fixed in inches, so a short
    dashboard's panel titles do not run into the dashboard's title."""
    x, y, w, h = grid
    inches = rows * ROW_INCHES
    top = 1.0 - 0.4 / inches  # the dashboard's title
    cell_h = top / rows
    left = x / GRID_COLUMNS + 0.035
    width = w / GRID_COLUMNS - 0.05
    height = h * cell_h - 0.45 / inches  # the panel's title and its tick labels
    bottom = top - (y + h) * cell_h + 0.25 / inches
    return left, bottom, width, max(height, 0.02)


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value:.0%}"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "reqps":
        return f"{value:.2f}/s"
    return f"{value:.3g}"


def _stat(ax: Any, series: Series, unit: str) -> None:
    finite = [v for v in series.values if not math.isnan(v)]
    ax.text(
        0.5,
        0.45,
        _fmt(finite[-1] if finite else math.nan, unit),
        ha="center",
        va="center",
        fontsize=22,
        fontweight="bold",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _lines(ax: Any, series: Sequence[Series], unit: str) -> None:
    import matplotlib.dates as mdates

    for s in series:
        ax.plot([_date(t) for t in s.times], s.values, label=s.name, linewidth=1.2)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.tick_params(labelsize=7)
    ax.set_ylabel({"s": "seconds", "reqps": "per second", "percentunit": "ratio"}.get(unit, ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", ncol=2)


def _heatmap(fig: Any, ax: Any, series: Sequence[Series]) -> None:
    import matplotlib.dates as mdates
    import numpy as np

    rows = sorted(series, key=lambda s: s.name)
    grid = sorted({t for s in rows for t in s.times})
    index = {t: i for i, t in enumerate(grid)}
    cells = np.full((len(rows), len(grid)), np.nan)
    for r, s in enumerate(rows):
        for t, v in zip(s.times, s.values, strict=True):
            cells[r, index[t]] = v
    image = ax.imshow(
        cells,
        aspect="auto",
        cmap="Oranges",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(_date(grid[0]), _date(grid[-1]), len(rows) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(rows)), [s.name for s in rows], fontsize=7)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)


def _date(timestamp: float) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp)


@dataclass(frozen=True, slots=True)
class Rendered:
    path: Path
    empty: tuple[str, ...]  # titles of panels whose queries returned no data


def render_all(
    prometheus_url: str,
    out_dir: Path,
    *,
    dashboards: Sequence[Path] | None = None,
    minutes: float = 60,
    rate_interval: str = "2m",
) -> list[Rendered]:
    """Every dashboard (default: all of the chart's) as ``out_dir/<name>.png``."""
    out: list[Rendered] = []
    for path in dashboards if dashboards is not None else dashboard_files():
        png = out_dir / f"{path.stem}.png"
        empty = render_png(
            load(path), prometheus_url, png, minutes=minutes, rate_interval=rate_interval
        )
        out.append(Rendered(png, tuple(empty)))
    return out
