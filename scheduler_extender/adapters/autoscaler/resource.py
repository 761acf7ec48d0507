"""The AgentAutoscaler custom resource on the wire (deploy/crds/agentautoscalers...yaml).

Pydantic views of ``spec`` and ``status`` with the CRD's field names and
defaults, and conversions to and from the domain's ``Autoscaler``. The API
server validates with the CRD's schema first; these models catch what a
schema-less client or an older CRD could still let through.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from scheduler_extender.domain.autoscaling.conditions import Condition, ConditionType
from scheduler_extender.domain.autoscaling.objects import (
    Autoscaler,
    AutoscalerStatus,
    ForecastSummary,
    StatusCondition,
    TargetRef,
)
from scheduler_extender.domain.autoscaling.policy import Mode, ScalingPolicy

GROUP = "scheduler-extender.io"
VERSION = "v1alpha1"
PLURAL = "agentautoscalers"
KIND = "AgentAutoscaler"
API_VERSION = f"{GROUP}/{VERSION}"

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("5m", "1h30m", "90s") in seconds, as the CRD's pattern allows."""
    if not isinstance(text, str) or not text:
        raise ValueError("a duration must be a string such as 5m or 90s")
    parts = _DURATION_PART.findall(text)
    if "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 5m, 90s or 1h30m")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class ScaleTargetRefModel(_Model):
    api_version: str = Field("apps/v1", alias="apiVersion", min_length=1)
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=253)


class ScaleDownModel(_Model):
    stabilization_window_seconds: int = Field(
        300, alias="stabilizationWindowSeconds", ge=0, le=3600
    )


class BehaviorModel(_Model):
    scale_down: ScaleDownModel = Field(default_factory=ScaleDownModel, alias="scaleDown")


class SpecModel(_Model):
    scale_target_ref: ScaleTargetRefModel = Field(alias="scaleTargetRef")
    agent: str = Field(min_length=1, max_length=253)
    min_replicas: int = Field(1, alias="minReplicas", ge=0)
    max_replicas: int = Field(alias="maxReplicas", ge=1)
    target_requests_per_replica: float = Field(alias="targetRequestsPerReplica", gt=0)
    lead_time: Duration = Field(300.0, alias="leadTime", ge=0, le=86400)
    quantile: float = Field(0.9, gt=0, lt=1)
    headroom: float = Field(0.0, ge=0, le=10)
    tolerance: float = Field(0.1, ge=0, le=1)
    mode: Mode = Mode.AUTO
    behavior: BehaviorModel = Field(default_factory=BehaviorModel)

    def policy(self) -> ScalingPolicy:
        return ScalingPolicy(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            target_per_replica=self.target_requests_per_replica,
            lead_time=self.lead_time,
            quantile=self.quantile,
            headroom=self.headroom,
            stabilization_window=float(self.behavior.scale_down.stabilization_window_seconds),
            tolerance=self.tolerance,
            mode=self.mode,
        )


class ConditionModel(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: datetime = Field(alias="lastTransitionTime")


class ForecastModel(_Model):
    point: float | None = None
    quantile: float | None = None
    generated_at: datetime | None = Field(None, alias="generatedAt")


class StatusModel(_Model):
    observed_generation: int | None = Field(None, alias="observedGeneration")
    current_replicas: int | None = Field(None, alias="currentReplicas")
    desired_replicas: int | None = Field(None, alias="desiredReplicas")
    forecast: ForecastModel | None = None
    observed_rate: float | None = Field(None, alias="observedRate")
    last_scale_time: datetime | None = Field(None, alias="lastScaleTime")
    conditions: list[ConditionModel] = Field(default_factory=list)

    def domain(self) -> AutoscalerStatus:
        known = {c.value for c in ConditionType}
        conditions = tuple(
            StatusCondition(
                Condition(ConditionType(c.type), c.status == "True", c.reason, c.message),
                c.last_transition_time,
            )
            for c in self.conditions
            if c.type in known and c.status != "Unknown"
        )
        forecast = None
        if self.forecast is not None:
            forecast = ForecastSummary(
                self.forecast.point, self.forecast.quantile, self.forecast.generated_at
            )
        return AutoscalerStatus(
            observed_generation=self.observed_generation,
            current_replicas=self.current_replicas,
            desired_replicas=self.desired_replicas,
            forecast=forecast,
            observed_rate=self.observed_rate,
            last_scale_time=self.last_scale_time,
            conditions=conditions,
        )


def _problem(exc: ValidationError) -> str:
    return "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def autoscaler_from_json(raw: dict[str, Any]) -> Autoscaler:
    """An AgentAutoscaler object as the API server returns it.

    A spec the controller cannot use gives ``policy=None`` and the reason in
    ``problem`` (reported in status), never an exception; a malformed status
    counts as empty.
    """
    metadata = raw.get("metadata") or {}
    spec_raw = raw.get("spec") or {}
    ref_raw = spec_raw.get("scaleTargetRef") or {}
    target = TargetRef(
        str(ref_raw.get("apiVersion", "apps/v1")), str(ref_raw.get("kind", "")),
        str(ref_raw.get("name", "")),
    )  # fmt: skip
    agent = str(spec_raw.get("agent", ""))
    policy: ScalingPolicy | None = None
    problem = ""
    try:
        spec = SpecModel.model_validate(spec_raw)
        policy = spec.policy()
    except ValidationError as exc:
        problem = _problem(exc)
    except ValueError as exc:
        problem = f"spec: {exc}"
    try:
        status = StatusModel.model_validate(raw.get("status") or {}).domain()
    except ValidationError:
        status = AutoscalerStatus()
    return Autoscaler(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        generation=int(metadata.get("generation") or 0),
        target=target,
        agent=agent,
        policy=policy,
        problem=problem,
        status=status,
    )


def timestamp(moment: datetime) -> str:
    """metav1.Time: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rate(value: float | None) -> float | None:
    # Rates are shown, not computed with: 4 significant digits keep status writes quiet.
    return None if value is None else float(f"{value:.4g}")


def status_to_json(status: AutoscalerStatus) -> dict[str, Any]:
    """The ``status`` object to write; absent values are null so a merge patch clears them."""
    forecast: dict[str, Any] | None = None
    if status.forecast is not None:
        generated = status.forecast.generated_at
        forecast = {
            "point": _rate(status.forecast.point),
            "quantile": _rate(status.forecast.quantile),
            "generatedAt": None if generated is None else timestamp(generated),
        }
    return {
        "observedGeneration": status.observed_generation,
        "currentReplicas": status.current_replicas,
        "desiredReplicas": status.desired_replicas,
        "forecast": forecast,
        "observedRate": _rate(status.observed_rate),
        "lastScaleTime": None
        if status.last_scale_time is None
        else timestamp(status.last_scale_time),
        "conditions": [
            {
                "type": c.condition.type.value,
                "status": "True" if c.condition.status else "False",
                "reason": c.condition.reason,
                "message": c.condition.message,
                "lastTransitionTime": timestamp(c.since),
                **(
                    {}
                    if status.observed_generation is None
                    else {"observedGeneration": status.observed_generation}
                ),
            }
            for c in status.conditions
        ],
    }
