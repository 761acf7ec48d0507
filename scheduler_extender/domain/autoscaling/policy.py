"""What one AgentAutoscaler asks for, as the replica arithmetic reads it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    AUTO = "Auto"  # decide and write the scale subresource
    DRY_RUN = "DryRun"  # decide and report in status only


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """Bounds and behaviour of one autoscaler; rates are requests per second."""

    min_replicas: int
    max_replicas: int
    target_per_replica: float
    lead_time: float = 300.0  # seconds a new replica needs before it serves
    quantile: float = 0.9
    headroom: float = 0.0  # extra capacity over the forecast, as a fraction
    stabilization_window: float = 300.0  # seconds a lower count must persist
    tolerance: float = 0.1  # relative load change ignored
    mode: Mode = Mode.AUTO

    def __post_init__(self) -> None:
        problems = []
        if self.min_replicas < 0:
            problems.append("minReplicas must not be negative")
        if self.max_replicas < max(self.min_replicas, 1):
            problems.append("maxReplicas must be at least 1 and at least minReplicas")
        if not self.target_per_replica > 0:
            problems.append("targetRequestsPerReplica must be positive")
        if self.lead_time < 0:
            problems.append("leadTime must not be negative")
        if not 0 < self.quantile < 1:
            problems.append("quantile must lie strictly between 0 and 1")
        if self.headroom < 0:
            problems.append("headroom must not be negative")
        if self.stabilization_window < 0:
            problems.append("stabilizationWindowSeconds must not be negative")
        if not 0 <= self.tolerance <= 1:
            problems.append("tolerance must lie in [0, 1]")
        if problems:
            raise ValueError("; ".join(problems))
