"""The contract every scoring policy fulfils."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.columns import FloatArray, IntArray
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity

NEUTRAL_SCORE = 0.5


class Audience(StrEnum):
    """Which pods a policy scores (see ``registry.Scorer``).

    An agent replica (a pod with the agent label) is scored by the ``ALL`` and
    ``AGENTS`` policies. Any other pod is scored by the ``UNLABELLED`` policies
    when one has a weight, and by the ``ALL`` policies otherwise. A pod of a
    group (``domain/groups.py``) is scored by the ``GROUPS`` policies as well,
    and a pod with DRA claims (``domain/devices.py``) by the ``DEVICES`` ones, as
    is, in a cluster with devices, a pod that asks for no GPU (its cpu and memory
    are what devices need too).
    """

    ALL = "all"
    AGENTS = "agents"
    UNLABELLED = "unlabelled"
    GROUPS = "groups"
    DEVICES = "devices"


@dataclass(frozen=True, slots=True)
class ScoringContext:
    snapshot: Snapshot
    popularity: Popularity
    gpu_resource: str


class ScoringPolicy(Protocol):
    """Scores candidate nodes for one pod.

    ``rows`` are the candidates' rows in ``ctx.snapshot.columns``. Returns one
    value in [0, 1] per row, higher is better. A policy with no opinion
    returns ``NEUTRAL_SCORE`` everywhere.
    """

    @property
    def name(self) -> str: ...

    @property
    def audience(self) -> Audience: ...

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray: ...


def neutral(rows: IntArray) -> FloatArray:
    return np.full(len(rows), NEUTRAL_SCORE)
