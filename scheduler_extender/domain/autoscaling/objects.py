"""AgentAutoscalers and their targets, as the controller sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from scheduler_extender.domain.autoscaling.conditions import Condition, ConditionType
from scheduler_extender.domain.autoscaling.policy import ScalingPolicy


@dataclass(frozen=True, slots=True)
class TargetRef:
    """``spec.scaleTargetRef``: any object with a ``scale`` subresource."""

    api_version: str
    kind: str
    name: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Scale:
    """The target's ``scale`` subresource."""

    replicas: int  # spec.replicas: what the workload is told to run
    observed: int  # status.replicas: what its controller last reported


@dataclass(frozen=True, slots=True)
class StatusCondition:
    condition: Condition
    since: datetime  # lastTransitionTime


@dataclass(frozen=True, slots=True)
class ForecastSummary:
    point: float | None
    quantile: float | None
    generated_at: datetime | None


@dataclass(frozen=True, slots=True)
class AutoscalerStatus:
    observed_generation: int | None = None
    current_replicas: int | None = None
    desired_replicas: int | None = None
    forecast: ForecastSummary | None = None
    observed_rate: float | None = None
    last_scale_time: datetime | None = None
    conditions: tuple[StatusCondition, ...] = ()

    def condition(self, kind: ConditionType) -> StatusCondition | None:
        return next((c for c in self.conditions if c.condition.type == kind), None)


@dataclass(frozen=True, slots=True)
class Autoscaler:
    """One AgentAutoscaler object. ``policy`` is None when the spec is unusable."""

    namespace: str
    name: str
    uid: str
    generation: int
    target: TargetRef
    agent: str
    policy: ScalingPolicy | None
    problem: str = ""  # why ``policy`` is None
    status: AutoscalerStatus = field(default_factory=AutoscalerStatus)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def transition(
    previous: tuple[StatusCondition, ...], current: tuple[Condition, ...], now: datetime
) -> tuple[StatusCondition, ...]:
    """The new conditions, keeping ``lastTransitionTime`` where the status did not flip."""
    since = {c.condition.type: c for c in previous}
    merged = []
    for condition in current:
        before = since.get(condition.type)
        unchanged = before is not None and before.condition.status == condition.status
        merged.append(StatusCondition(condition, before.since if before and unchanged else now))
    return tuple(merged)
