"""What the autoscaling controller needs from the cluster, as protocols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from scheduler_extender.domain.autoscaling.objects import (
    Autoscaler,
    AutoscalerStatus,
    Scale,
    TargetRef,
)


class TargetError(Exception):
    """The target's scale subresource cannot be read or written."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # UpperCamelCase, for the AbleToScale condition


class AutoscalerStore(Protocol):
    def list_autoscalers(self) -> Sequence[Autoscaler]: ...
    def update_status(self, autoscaler: Autoscaler, status: AutoscalerStatus) -> None: ...


class ScaleClient(Protocol):
    def get_scale(self, namespace: str, target: TargetRef) -> Scale: ...
    def set_replicas(self, namespace: str, target: TargetRef, replicas: int) -> None: ...
    def gpus_per_replica(self, namespace: str, target: TargetRef) -> int: ...


class ConflictFinder(Protocol):
    def autoscaler_of(self, namespace: str, target: TargetRef) -> str | None:
        """The name of another autoscaler (an HPA) that targets the same object."""
        ...


class EventRecorder(Protocol):
    def record(
        self, autoscaler: Autoscaler, *, warning: bool, reason: str, message: str
    ) -> None: ...
