"""The AgentAutoscaler wire models against the CRD that ships in deploy/crds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler_extender.adapters.autoscaler.resource import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    SpecModel,
    StatusModel,
    autoscaler_from_json,
    parse_duration,
    status_to_json,
)
from scheduler_extender.domain.autoscaling.conditions import Condition, ConditionType
from scheduler_extender.domain.autoscaling.objects import (
    AutoscalerStatus,
    ForecastSummary,
    StatusCondition,
)
from scheduler_extender.domain.autoscaling.policy import Mode

CRD = Path(__file__).parents[4] / "deploy" / "crds" / "agentautoscalers.scheduler-extender.io.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CRD.read_text())
    return document


def version_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def aas(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": "llama", "namespace": "ml", "uid": "u-1", "generation": 3},
        "spec": spec,
        **({"status": status} if status is not None else {}),
    }


MINIMAL = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
    "agent": "llama",
    "maxReplicas": 8,
    "targetRequestsPerReplica": 5,
}


def test_names_match_the_crd(crd: dict[str, Any]) -> None:
    assert crd["spec"]["group"] == GROUP
    assert crd["spec"]["names"]["plural"] == PLURAL
    assert crd["spec"]["names"]["kind"] == KIND
    assert "aas" in crd["spec"]["names"]["shortNames"]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    assert "status" in version["subresources"]


def test_spec_defaults_match_the_crd(crd: dict[str, Any]) -> None:
    props = version_schema(crd)["properties"]["spec"]["properties"]
    spec = SpecModel.model_validate(MINIMAL)
    assert spec.min_replicas == props["minReplicas"]["default"]
    assert spec.lead_time == parse_duration(props["leadTime"]["default"])
    assert spec.quantile == props["quantile"]["default"]
    assert spec.headroom == props["headroom"]["default"]
    assert spec.tolerance == props["tolerance"]["default"]
    assert spec.mode.value == props["mode"]["default"]
    assert {m.value for m in Mode} == set(props["mode"]["enum"])
    window = props["behavior"]["properties"]["scaleDown"]["properties"]
    assert (
        spec.behavior.scale_down.stabilization_window_seconds
        == (window["stabilizationWindowSeconds"]["default"])
    )
    assert (
        spec.scale_target_ref.api_version
        == (props["scaleTargetRef"]["properties"]["apiVersion"]["default"])
    )


def test_every_spec_field_of_the_crd_is_read(crd: dict[str, Any]) -> None:
    props = set(version_schema(crd)["properties"]["spec"]["properties"])
    read = {field.alias or name for name, field in SpecModel.model_fields.items()}
    assert props == read


def test_status_we_write_is_what_the_crd_keeps(crd: dict[str, Any]) -> None:
    """Fields the CRD does not list would be pruned by the API server."""
    schema = version_schema(crd)["properties"]["status"]
    written = status_to_json(full_status())
    assert set(written) <= set(schema["properties"])
    assert set(written["forecast"]) <= set(schema["properties"]["forecast"]["properties"])
    item = schema["properties"]["conditions"]["items"]
    for condition in written["conditions"]:
        assert set(item["required"]) <= set(condition) <= set(item["properties"])
        assert condition["status"] in item["properties"]["status"]["enum"]
    assert {c["type"] for c in written["conditions"]} == {t.value for t in ConditionType}


def test_printer_columns_read_fields_we_write(crd: dict[str, Any]) -> None:
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    status = status_to_json(full_status())
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"].lstrip(".").split(".")
        if path[0] != "status":
            continue
        value: Any = {"status": status}
        for part in path:
            value = value[part]
        assert value is not None, column["name"]


def full_status() -> AutoscalerStatus:
    at = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    return AutoscalerStatus(
        observed_generation=3,
        current_replicas=2,
        desired_replicas=5,
        forecast=ForecastSummary(12.3456789, 20.0, at),
        observed_rate=9.87654,
        last_scale_time=at,
        conditions=tuple(
            StatusCondition(Condition(kind, i % 2 == 0, "Because", f"m{i}"), at)
            for i, kind in enumerate(ConditionType)
        ),
    )


def test_object_to_domain_with_defaults() -> None:
    autoscaler = autoscaler_from_json(aas({**MINIMAL, "leadTime": "2m30s", "mode": "DryRun"}))
    assert (autoscaler.key, autoscaler.uid, autoscaler.generation) == ("ml/llama", "u-1", 3)
    assert (autoscaler.target.group, autoscaler.target.version) == ("apps", "v1")
    assert str(autoscaler.target) == "Deployment/llama"
    policy = autoscaler.policy
    assert policy is not None
    assert (policy.min_replicas, policy.max_replicas, policy.target_per_replica) == (1, 8, 5.0)
    assert (policy.lead_time, policy.mode, policy.stabilization_window) == (
        150.0,
        Mode.DRY_RUN,
        300,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"maxReplicas": 0}, "spec.maxReplicas"),
        ({"minReplicas": 9}, "minReplicas"),
        ({"leadTime": "5 minutes"}, "spec.leadTime"),
        ({"quantile": 1.5}, "spec.quantile"),
        ({"targetRequestsPerReplica": 0}, "spec.targetRequestsPerReplica"),
        ({"mode": "Sometimes"}, "spec.mode"),
    ],
)
def test_unusable_specs_are_reported_not_raised(change: dict[str, Any], message: str) -> None:
    autoscaler = autoscaler_from_json(aas({**MINIMAL, **change}))
    assert autoscaler.policy is None
    assert message in autoscaler.problem


def test_missing_target_is_reported() -> None:
    spec = {k: v for k, v in MINIMAL.items() if k != "scaleTargetRef"}
    autoscaler = autoscaler_from_json(aas(spec))
    assert autoscaler.policy is None
    assert "scaleTargetRef" in autoscaler.problem


def test_status_round_trips_through_the_wire() -> None:
    status = full_status()
    wire = status_to_json(status)
    assert wire["forecast"]["point"] == 12.35  # four significant digits
    assert wire["lastScaleTime"] == "2026-05-01T12:00:00Z"
    back = StatusModel.model_validate(wire).domain()
    assert status_to_json(back) == wire
    assert autoscaler_from_json(aas(MINIMAL, wire)).status == back


def test_malformed_status_counts_as_empty() -> None:
    autoscaler = autoscaler_from_json(aas(MINIMAL, {"currentReplicas": "many"}))
    assert autoscaler.status == AutoscalerStatus()


def test_foreign_conditions_are_ignored() -> None:
    wire = status_to_json(full_status())
    wire["conditions"].append(
        {"type": "Other", "status": "True", "reason": "X", "message": "",
         "lastTransitionTime": "2026-05-01T12:00:00Z"}
    )  # fmt: skip
    assert len(StatusModel.model_validate(wire).domain().conditions) == len(ConditionType)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300.0), ("1h30m", 5400.0), ("90s", 90.0), ("1.5h", 5400.0), ("250ms", 0.25)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "5d", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
