"""The Grafana dashboards: a Prometheus data source variable and nothing hard-coded, a sane grid,
valid PromQL (checked by promtool) over metrics that exist."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler_extender.devcluster import dashboards
from tests.unit.chart.metrics_catalog import KUBE_SCHEDULER, referenced, service_metrics

FILES = dashboards.dashboard_files()
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED = {"scheduling", "gpus", "autoscaler", "popularity", "packer"}


def test_every_dashboard_the_issue_asks_for_is_there() -> None:
    present = {f.stem for f in FILES}
    missing = EXPECTED - present
    assert not missing, f"dashboards not written yet: {sorted(missing)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_data_source_is_a_variable(path: Path) -> None:
    board = dashboards.load(path)
    variables = board["templating"]["list"]
    (ds,) = [v for v in variables if v["type"] == "datasource"]
    assert ds["name"] == "datasource"
    assert ds["query"] == "prometheus"

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "datasource" in node and node is not ds:
                source = node["datasource"]
                builtin = isinstance(source, dict) and source.get("type") == "grafana"
                assert builtin or source == DATASOURCE, f"{path.name}: hard-coded {source}"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(board)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_panels_have_ids_queries_and_a_grid_without_overlaps(path: Path) -> None:
    board = dashboards.load(path)
    panels = dashboards.panels(board)
    assert panels
    ids = [p.id for p in panels]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel.queries, panel.title
        assert all(q.expr.strip() for q in panel.queries), panel.title
        x, y, w, h = panel.grid
        assert x >= 0, panel.title
        assert x + w <= dashboards.GRID_COLUMNS, panel.title
        cells = {(cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)}
        assert not cells & taken, f"{path.name}: {panel.title} overlaps another panel"
        taken |= cells
    assert board["uid"].startswith("scheduler-extender-")
    assert board["title"]


def test_every_query_is_valid_promql(promtool: Path, tmp_path: Path) -> None:
    """promtool parses each panel query, variables expanded, as a recording rule."""
    rules = []
    for path in FILES:
        board = dashboards.load(path)
        for panel in dashboards.panels(board):
            for i, query in enumerate(panel.queries):
                rules.append(
                    {
                        "record": f"dashboard:{path.stem}:{panel.id}:{i}",
                        "expr": dashboards.expand(query.expr, board),
                    }
                )
    file = tmp_path / "queries.rules.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_queries_use_existing_metrics() -> None:
    known = service_metrics() | KUBE_SCHEDULER
    used: dict[str, set[str]] = {}
    for path in FILES:
        for panel in dashboards.panels(dashboards.load(path)):
            for query in panel.queries:
                for name in referenced(query.expr):
                    used.setdefault(name, set()).add(f"{path.stem}: {panel.title}")
    missing = {name: panels for name, panels in used.items() if name not in known}
    assert not missing, f"panels query metrics nobody exports: {missing}"


def test_expand_fills_grafana_variables_and_refuses_unknown_ones() -> None:
    board = {"templating": {"list": [{"type": "query", "name": "namespace", "allValue": ".*"}]}}
    assert (
        dashboards.expand('rate(x{namespace=~"$namespace"}[$__rate_interval])', board)
        == 'rate(x{namespace=~".*"}[2m])'
    )
    with pytest.raises(ValueError, match="agent"):
        dashboards.expand('x{agent=~"${agent}"}', board)


def test_the_observed_rate_box_defaults_to_the_forecast_query() -> None:
    """The popularity dashboard reads observed rates with the query the forecast itself uses."""
    from scheduler_extender.config import PrometheusSettings

    board = dashboards.load(dashboards.DASHBOARDS / "popularity.json")
    (box,) = [v for v in board["templating"]["list"] if v["type"] == "textbox"]
    assert box["query"] == PrometheusSettings().query
