"""The one place scoring policies are registered and combined."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.columns import IntArray
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import UNIFORM_GPUS, GpuCapacity
from scheduler_extender.domain.scoring.agent_spread import AgentSpread
from scheduler_extender.domain.scoring.gpu_binpack import GpuBinPacking
from scheduler_extender.domain.scoring.policy import ScoringContext, ScoringPolicy
from scheduler_extender.domain.scoring.popularity import PopularityAware

MAX_SCORE = 10  # MaxExtenderPriority in k8s.io/kube-scheduler/extender/v1

# Each factory is handed the fleet's per-GPU-model capacity; only load-aware policies read it.
POLICIES: Mapping[str, Callable[[GpuCapacity], ScoringPolicy]] = {
    "gpu_binpack": lambda _capacity: GpuBinPacking(),
    "agent_spread": lambda _capacity: AgentSpread(),
    "popularity": PopularityAware,
}

DEFAULT_WEIGHTS: Mapping[str, float] = {"gpu_binpack": 1.0, "agent_spread": 2.0, "popularity": 3.0}


class UnknownPolicyError(ValueError):
    pass


def check_weights(weights: Mapping[str, float]) -> None:
    """Raises ValueError unless every policy named is registered and no weight is negative."""
    unknown = sorted(set(weights) - set(POLICIES))
    if unknown:
        raise UnknownPolicyError(f"unknown scoring policies {unknown}; known: {sorted(POLICIES)}")
    if any(w < 0 for w in weights.values()):
        raise ValueError("scoring weights must not be negative")


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """Scores of candidate nodes, in the order asked."""

    hosts: Sequence[str]
    scores: Sequence[int]  # 0..MAX_SCORE
    # policy -> weighted share of each host's score (only when explained)
    contributions: Mapping[str, Sequence[float]]

    def pairs(self) -> list[tuple[str, int]]:
        return list(zip(self.hosts, self.scores, strict=True))


@dataclass(frozen=True, slots=True)
class Scorer:
    """Weighted combination of policies into 0..MAX_SCORE."""

    policies: tuple[tuple[ScoringPolicy, float], ...]

    @staticmethod
    def from_weights(weights: Mapping[str, float], capacity: GpuCapacity = UNIFORM_GPUS) -> Scorer:
        check_weights(weights)
        chosen = tuple((POLICIES[name](capacity), w) for name, w in weights.items() if w > 0)
        return Scorer(chosen)

    def score(
        self,
        pod: Pod,
        hosts: Sequence[str],
        rows: IntArray,
        ctx: ScoringContext,
        *,
        explain: bool = False,
    ) -> ScoreTable:
        """Score the nodes at ``rows`` (named ``hosts``) for ``pod``."""
        total_weight = sum(w for _, w in self.policies) or 1.0
        combined = np.zeros(len(rows))
        contributions: dict[str, Sequence[float]] = {}
        for policy, weight in self.policies:
            share = MAX_SCORE * weight / total_weight * np.clip(policy.score(pod, rows, ctx), 0, 1)
            combined += share
            if explain:
                contributions[policy.name] = share.tolist()
        scores = np.clip(np.rint(combined), 0, MAX_SCORE).astype(np.int64)
        return ScoreTable(hosts, scores.tolist(), contributions)
