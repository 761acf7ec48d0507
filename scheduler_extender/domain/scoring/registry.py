"""The one place scoring policies are registered and combined."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.columns import IntArray
from scheduler_extender.domain.groups import group_of
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import UNIFORM_GPUS, GpuCapacity
from scheduler_extender.domain.scoring.agent_spread import AgentSpread
from scheduler_extender.domain.scoring.demand_packing import DemandAwarePacking
from scheduler_extender.domain.scoring.device_packing import DevicePacking
from scheduler_extender.domain.scoring.device_popularity import DevicePopularity
from scheduler_extender.domain.scoring.gpu_binpack import GpuBinPacking
from scheduler_extender.domain.scoring.group_topology import GroupTopology
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, ScoringPolicy
from scheduler_extender.domain.scoring.popularity import PopularityAware

MAX_SCORE = 10  # MaxExtenderPriority in k8s.io/kube-scheduler/extender/v1

# Each factory is handed the fleet's per-GPU-model capacity; only load-aware policies read it.
POLICIES: Mapping[str, Callable[[GpuCapacity], ScoringPolicy]] = {
    "gpu_binpack": lambda _capacity: GpuBinPacking(),
    "agent_spread": lambda _capacity: AgentSpread(),
    "popularity": PopularityAware,
    "demand_packing": lambda _capacity: DemandAwarePacking(),
    "group_topology": lambda _capacity: GroupTopology(),
    "device_packing": lambda _capacity: DevicePacking(),
    "device_popularity": lambda _capacity: DevicePopularity(),
}

# demand_packing scores the pods without the agent label alone (see policy.Audience), so its
# weight only says whether it is on.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "gpu_binpack": 1.0,
    "agent_spread": 2.0,
    "popularity": 3.0,
    "demand_packing": 1.0,
    "group_topology": 4.0,
    "device_packing": 4.0,
    "device_popularity": 3.0,
}


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

    def pairs(self) -> Iterator[tuple[str, int]]:
        return zip(self.hosts, self.scores, strict=True)


@dataclass(frozen=True, slots=True)
class Scorer:
    """Weighted combination of policies into 0..MAX_SCORE.

    Agent replicas are scored by the policies for all pods and for agents; the
    other pods by the policies for unlabelled pods if one has a weight, else by
    the policies for all pods; pods of a group by the group policies as well, and
    pods with DRA claims by the device policies (``policy.Audience``).
    """

    policies: tuple[tuple[ScoringPolicy, float], ...]

    def for_pod(self, pod: Pod, ctx: ScoringContext) -> tuple[tuple[ScoringPolicy, float], ...]:
        """The weighted policies that score ``pod``."""
        wanted: tuple[Audience, ...]
        if pod.agent is not None:
            wanted = (Audience.ALL, Audience.AGENTS)
        elif any(p.audience is Audience.UNLABELLED for p, _ in self.policies):
            wanted = (Audience.UNLABELLED,)
        else:
            wanted = (Audience.ALL,)
        if group_of(pod) is not None:
            wanted = (*wanted, Audience.GROUPS)
        if pod.claims or (ctx.snapshot.devices and pod.requests.get(ctx.gpu_resource) <= 0):
            wanted = (*wanted, Audience.DEVICES)
        return tuple((p, w) for p, w in self.policies if p.audience in wanted)

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
        policies = self.for_pod(pod, ctx)
        total_weight = sum(w for _, w in policies) or 1.0
        combined = np.full(len(rows), 0.0 if policies else MAX_SCORE / 2)
        contributions: dict[str, Sequence[float]] = {}
        for policy, weight in policies:
            share = MAX_SCORE * weight / total_weight * np.clip(policy.score(pod, rows, ctx), 0, 1)
            combined += share
            if explain:
                contributions[policy.name] = share.tolist()
        scores = np.clip(np.rint(combined), 0, MAX_SCORE).astype(np.int64)
        return ScoreTable(hosts, scores.tolist(), contributions)
