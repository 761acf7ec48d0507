"""The one place scoring policies are registered and combined."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from scheduler_extender.domain.cluster import NodeState
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.agent_spread import AgentSpread
from scheduler_extender.domain.scoring.gpu_binpack import GpuBinPacking
from scheduler_extender.domain.scoring.policy import ScoringContext, ScoringPolicy
from scheduler_extender.domain.scoring.popularity import PopularityAware

MAX_SCORE = 10  # MaxExtenderPriority in k8s.io/kube-scheduler/extender/v1

POLICIES: Mapping[str, Callable[[], ScoringPolicy]] = {
    "gpu_binpack": GpuBinPacking,
    "agent_spread": AgentSpread,
    "popularity": PopularityAware,
}

DEFAULT_WEIGHTS: Mapping[str, float] = {"gpu_binpack": 1.0, "agent_spread": 2.0, "popularity": 3.0}


class UnknownPolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class NodeScore:
    host: str
    score: int  # 0..MAX_SCORE
    contributions: Mapping[str, float]  # policy -> weighted share of the score


@dataclass(frozen=True, slots=True)
class Scorer:
    """Weighted combination of policies into 0..MAX_SCORE."""

    policies: tuple[tuple[ScoringPolicy, float], ...]

    @staticmethod
    def from_weights(weights: Mapping[str, float]) -> Scorer:
        unknown = sorted(set(weights) - set(POLICIES))
        if unknown:
            raise UnknownPolicyError(
                f"unknown scoring policies {unknown}; known: {sorted(POLICIES)}"
            )
        chosen = tuple((POLICIES[name](), w) for name, w in weights.items() if w > 0)
        return Scorer(chosen)

    def score(self, pod: Pod, nodes: Sequence[NodeState], ctx: ScoringContext) -> list[NodeScore]:
        total_weight = sum(w for _, w in self.policies) or 1.0
        per_policy = [
            (policy.name, weight, policy.score(pod, nodes, ctx)) for policy, weight in self.policies
        ]
        results = []
        for i, state in enumerate(nodes):
            contributions = {
                name: MAX_SCORE * weight * min(max(values[i], 0.0), 1.0) / total_weight
                for name, weight, values in per_policy
            }
            combined = round(sum(contributions.values()))
            results.append(NodeScore(state.name, min(max(combined, 0), MAX_SCORE), contributions))
        return results
