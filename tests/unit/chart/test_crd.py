"""The AgentAutoscaler CRD: one source (deploy/crds) copied into the chart, with the schema the
controller relies on. The API server validates it for real in tests/e2e/test_chart.py."""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.chart.conftest import CHART, REPO

NAME = "agentautoscalers.scheduler-extender.io.yaml"
SOURCE = REPO / "deploy" / "crds" / NAME
COPY = CHART / "crds" / NAME


def test_the_chart_ships_the_deploy_crd_unchanged() -> None:
    assert COPY.read_bytes() == SOURCE.read_bytes(), f"run: cp {SOURCE} {COPY}"
    assert sorted(p.name for p in COPY.parent.iterdir()) == [NAME]


def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SOURCE.read_text())
    return loaded


def test_names_scope_and_version() -> None:
    spec = crd()["spec"]
    assert spec["group"] == "scheduler-extender.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "AgentAutoscaler"
    assert spec["names"]["shortNames"] == ["aas"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    (version,) = crd()["spec"]["versions"]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Target", "Agent", "Current", "Desired", "Forecast", "Mode", "Age"]


def test_spec_fields_and_defaults() -> None:
    (version,) = crd()["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert set(spec["required"]) == {
        "scaleTargetRef",
        "agent",
        "maxReplicas",
        "targetRequestsPerReplica",
    }
    assert props["leadTime"]["default"] == "5m"
    assert props["quantile"]["default"] == 0.9
    assert props["mode"]["enum"] == ["Auto", "DryRun"]
    window = props["behavior"]["properties"]["scaleDown"]["properties"][
        "stabilizationWindowSeconds"
    ]
    assert window["default"] == 300
    assert {"tolerance", "headroom", "minReplicas"} <= set(props)


def test_status_fields() -> None:
    (version,) = crd()["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {
        "currentReplicas", "desiredReplicas", "forecast", "observedRate", "lastScaleTime", "conditions"
    } <= set(status)  # fmt: skip
    assert set(status["forecast"]["properties"]) >= {"point", "quantile"}
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
