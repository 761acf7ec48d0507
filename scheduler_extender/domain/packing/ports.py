"""What the background packer needs from the outside world, as protocols."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget
from scheduler_extender.domain.packing.reservations import ReservationBook


class Eviction(StrEnum):
    """How an Eviction API call ended (bounded: also a metric label)."""

    EVICTED = "evicted"
    GONE = "gone"  # the pod no longer exists, or was replaced (UID precondition)
    THROTTLED = "throttled"  # 429: a PodDisruptionBudget refuses it now
    REFUSED = "refused"  # anything else (e.g. several budgets cover the pod)


class ClusterObjects(Protocol):
    """The watch-fed cache: current objects, and where reservations are published."""

    @property
    def synced(self) -> bool:
        """Whether the first full list has arrived (a partial view must not be planned on)."""
        ...

    def objects(self) -> tuple[Sequence[Node], Sequence[Pod]]: ...
    def set_reservations(self, book: ReservationBook) -> None: ...


class PackerApi(Protocol):
    """Calls to the API server the packer makes."""

    def unschedulable(self, scheduler_name: str) -> set[str]:
        """UIDs of pending pods of this scheduler with PodScheduled=False, Unschedulable."""
        ...

    def disruption_budgets(self) -> Sequence[DisruptionBudget]: ...
    def evict(self, pod: Pod) -> Eviction: ...
    def event(self, pod: Pod, reason: str, message: str, *, warning: bool = False) -> None: ...
