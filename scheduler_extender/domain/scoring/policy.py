"""The contract every scoring policy fulfils."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from scheduler_extender.domain.cluster import NodeState, Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity

NEUTRAL_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class ScoringContext:
    snapshot: Snapshot
    popularity: Popularity
    gpu_resource: str


class ScoringPolicy(Protocol):
    """Scores candidate nodes for one pod.

    Returns one value in [0, 1] per node, in the order given; higher is
    better. A policy with no opinion returns ``NEUTRAL_SCORE`` everywhere.
    """

    @property
    def name(self) -> str: ...

    def score(
        self, pod: Pod, nodes: Sequence[NodeState], ctx: ScoringContext
    ) -> Sequence[float]: ...


def neutral(nodes: Sequence[NodeState]) -> list[float]:
    return [NEUTRAL_SCORE] * len(nodes)
