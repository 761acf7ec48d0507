"""Status conditions of an AgentAutoscaler (``metav1.Condition`` without the clock)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ConditionType(StrEnum):
    ABLE_TO_SCALE = "AbleToScale"
    FORECAST_AVAILABLE = "ForecastAvailable"
    SCALING_LIMITED = "ScalingLimited"
    CONFLICTING_AUTOSCALER = "ConflictingAutoscaler"


@dataclass(frozen=True, slots=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str  # UpperCamelCase, as Kubernetes conditions spell it
    message: str = ""
