"""The alert rules: promtool checks them, its unit tests fire and resolve each alert, and the
chart's PrometheusRule carries exactly the same rules."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.unit.chart.conftest import CHART, MONITORING_API, Render, one
from tests.unit.chart.metrics_catalog import KUBE_SCHEDULER, referenced, service_metrics

RULES = CHART / "alerts" / "scheduler-extender.rules.yaml"
TESTS = Path(__file__).parent / "alerts.test.yaml"


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules(promtool: Path) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests(promtool: Path) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_resolved() -> None:
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        mine = [c for c in cases if c["alertname"] == name]
        fired = [c for c in mine if c["exp_alerts"]]
        assert fired, f"{name}: no test case where it fires"
        first_fire = min(_minutes(c["eval_time"]) for c in fired)
        assert any(not c["exp_alerts"] and _minutes(c["eval_time"]) > first_fire for c in mine), (
            f"{name}: no test case where it resolves after firing"
        )


def _minutes(duration: str) -> float:
    units = {"s": 1 / 60, "m": 1, "h": 60}
    return float(duration[:-1]) * units[duration[-1]]


def test_every_alert_carries_severity_and_runbook() -> None:
    for alert in alerts():
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]
        assert alert.get("for"), f"{alert['alert']}: fires on a single evaluation"


def test_alerts_use_existing_metrics() -> None:
    known = service_metrics() | KUBE_SCHEDULER
    used = {name for alert in alerts() for name in referenced(alert["expr"])}
    assert used <= known, f"alerts use unknown metrics: {sorted(used - known)}"


def test_the_packer_alert_splits_every_run_outcome_into_failed_or_completed() -> None:
    from scheduler_extender.service.packer import ERROR, RUN_OUTCOMES

    (rule,) = [a for a in alerts() if a["alert"] == "SchedulerExtenderPackerFailing"]
    matchers = re.findall(r'packer_runs_total\{outcome=~"([^"]+)"\}', rule["expr"])
    assert len(matchers) == 2, rule["expr"]
    named = [outcome for matcher in matchers for outcome in matcher.split("|")]
    assert sorted(named) == sorted([*RUN_OUTCOMES, ERROR])


def test_the_schema_lists_exactly_the_alerts() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    disabled = schema["properties"]["prometheusRule"]["properties"]["disabledAlerts"]
    assert disabled["items"]["enum"] == [a["alert"] for a in alerts()]


def rendered_rules(render: Render, *extra: str) -> list[dict[str, Any]]:
    manifests = render(
        set_values=["prometheusRule.enabled=true", *extra], api_versions=[MONITORING_API]
    )
    groups: list[dict[str, Any]] = one(manifests, "PrometheusRule")["spec"]["groups"]
    return groups


def test_the_prometheus_rule_is_the_rules_file(render: Render) -> None:
    assert rendered_rules(render) == yaml.safe_load(RULES.read_text())["groups"]


def test_alerts_can_be_dropped_relabelled_and_follow_the_scheduler_name(render: Render) -> None:
    groups = rendered_rules(
        render,
        "prometheusRule.disabledAlerts={SchedulerExtenderErrors}",
        "prometheusRule.additionalAlertLabels.team=ml",
        "schedulerName=batch-gpu",
    )
    rules = [r for g in groups for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert "SchedulerExtenderErrors" not in names
    assert len(names) == len(alerts()) - 1
    assert all(r["labels"]["team"] == "ml" and r["labels"]["severity"] for r in rules)
    (unschedulable,) = [r for r in rules if r["alert"] == "SchedulerExtenderPodsUnschedulable"]
    assert 'profile="batch-gpu"' in unschedulable["expr"]
