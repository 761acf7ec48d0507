"""values.schema.json covers every value, and helm enforces it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler_extender.devcluster.chart_schema import generated, render
from tests.unit.chart.conftest import CHART, CI_VALUES, run_helm, template_args

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def node_for(path: list[str]) -> dict[str, Any] | None:
    node: dict[str, Any] = SCHEMA
    for key in path:
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif node.get("type") == "object" and "properties" not in node:
            return node  # a free-form map (labels, selectors, security contexts)
        else:
            return None
    return node


def leaves(value: Any, path: list[str]) -> list[list[str]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaves(v, [*path, k])]
    return [path]


def test_every_value_has_a_schema() -> None:
    uncovered = [".".join(p) for p in leaves(VALUES, []) if node_for(p) is None]
    assert uncovered == []


def test_every_schema_key_is_a_value() -> None:
    """The schema does not accept keys that values.yaml does not document."""

    def walk(node: dict[str, Any], value: Any, path: str) -> list[str]:
        if "properties" not in node or node.get("additionalProperties") is not False:
            return []
        if not isinstance(value, dict):
            return [path]
        out = []
        for key, child in node["properties"].items():
            if key == "global":
                continue
            if key not in value:
                out.append(f"{path}.{key}")
            else:
                out += walk(child, value[key], f"{path}.{key}")
        return out

    # The settings maps list the service's settings; values.yaml leaves them all unset.
    passthrough = (
        ".extender.settings.", ".extender.packer.", ".prometheus.settings.", ".controller.settings."
    )  # fmt: skip
    missing = [p for p in walk(SCHEMA, VALUES, "") if not p.startswith(passthrough)]
    assert missing == []


def test_objects_refuse_unknown_keys() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        out = []
        if "properties" in node and node.get("additionalProperties") is not False:
            out.append(path)
        for key, child in node.get("properties", {}).items():
            out += walk(child, f"{path}.{key}")
        items = node.get("items")
        if isinstance(items, dict):
            out += walk(items, f"{path}[]")
        return out

    assert walk(SCHEMA, "") == []


def test_every_value_is_documented_by_a_comment_naming_it() -> None:
    text = (CHART / "values.yaml").read_text().splitlines()
    documented = {m.group(1) for line in text if (m := re.match(r"\s*# ([\w.]+) --", line))}
    for path in leaves(VALUES, []):
        # documented at the key itself or at the nearest documented parent (e.g. resources)
        prefixes = {".".join(path[:i]) for i in range(1, len(path) + 1)}
        assert prefixes & documented, ".".join(path)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("scheduler.replicas=0", "/scheduler/replicas"),
        ("scheduler.podAntiAffinity=sometimes", "/scheduler/podAntiAffinity"),
        ("scheduler.podDisruptionBudget.maxUnavailable=half", "maxUnavailable"),
        ("extender.probePort=0", "/extender/probePort"),
        ("extender.bogus=1", "bogus"),
        ("scheduler.extender.weight=0", "/scheduler/extender/weight"),
        ("scheduler.extender.httpTimeout=5 seconds", "/scheduler/extender/httpTimeout"),
        ("scheduler.extender.managedResources=null", "managedResources"),
        ("prometheusRule.disabledAlerts={NoSuchAlert}", "/prometheusRule/disabledAlerts"),
        ("schedulerName=Not_A_Name", "/schedulerName"),
        ("extender.settings.noSuchSetting=1", "noSuchSetting"),
        ("extender.settings.gpuModelCapacity.NVIDIA-L4=0", "gpuModelCapacity"),
        ("image.digest=latest", "/image/digest"),
    ],
)
def test_helm_rejects_bad_values(helm: Path, setting: str, message: str) -> None:
    result = run_helm(helm, *template_args(set_values=[setting]), check=False)
    assert result.returncode != 0, setting
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_are_valid(helm: Path, values: Path) -> None:
    # helm template already validates; this names the file when one drifts from the schema.
    args = template_args(values=[values], api_versions=["cert-manager.io/v1"])
    result = run_helm(helm, *args, check=False)
    assert "values don't meet the specifications" not in result.stderr, result.stderr


def test_the_settings_maps_are_generated_from_the_settings_models() -> None:
    """Run ``make chart-schema`` after changing a setting in config.py."""
    assert render(generated(SCHEMA)) == (CHART / "values.schema.json").read_text()
