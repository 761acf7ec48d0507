"""The filter's extension point: rules that close nodes to pods for reasons of their own.

kube-scheduler's own checks (resources, the agent limit) are built into
``filtering.py``. A feature that must keep pods off nodes (the packing plan's
reservations, ``packing/reservations.py``) implements ``NodeRule`` and is
published with the snapshot (``SharedCluster.publish_rule``), so the filter
and the snapshot need not know the feature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from scheduler_extender.domain.objects import Pod

# Free amount of a resource on a node, as the caller's snapshot accounts it.
FreeAmounts = Callable[[str, str], int]


class NodeRule(Protocol):
    """Run on the nodes that passed the built-in checks; false when it has nothing to say."""

    @property
    def reason(self) -> str:
        """The rejection reason it reports: one of filtering.Reason (a bounded metric label)."""
        ...

    def __bool__(self) -> bool: ...

    def blocked(self, pod: Pod, nodes: Iterable[str], free: FreeAmounts) -> dict[str, str]:
        """Nodes among ``nodes`` closed to ``pod``, with why."""
        ...
