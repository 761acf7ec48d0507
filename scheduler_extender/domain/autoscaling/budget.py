"""Sharing a GPU budget between agents: the greedy rule of DeepSeek's EPLB.

When the agents' own decisions need more GPUs than the budget holds, every
agent first keeps its floor (``minReplicas``); then each further replica goes,
one at a time, to the agent whose predicted load per replica is highest
(``deepseek-ai/EPLB: eplb.py``, ``replicate_experts``). Load is measured in
replicas' worth (rate / targetRequestsPerReplica), so agents whose replicas
serve different rates compete on how overloaded each replica would be.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scheduler_extender.domain.autoscaling.policy import ScalingPolicy
from scheduler_extender.domain.autoscaling.replicas import Decision


@dataclass(frozen=True, slots=True)
class BudgetClaim:
    key: str
    wanted: int  # the count the agent's own decision asks for
    floor: int  # never cut below this (minReplicas, or the held count when load is unknown)
    gpus_per_replica: int
    demand: float | None  # predicted load in replicas' worth; None: unknown

    def __post_init__(self) -> None:
        if self.wanted < 0 or self.floor < 0 or self.gpus_per_replica < 0:
            raise ValueError(f"{self.key}: counts must not be negative")


def allocate(claims: Sequence[BudgetClaim], budget: int) -> Mapping[str, int]:
    """Replicas per claim key within ``budget`` GPUs (floors are kept even above it)."""
    if sum(c.wanted * c.gpus_per_replica for c in claims) <= budget:
        return {c.key: c.wanted for c in claims}
    granted: dict[str, int] = {}
    remaining = budget
    for claim in claims:
        # Replicas without GPUs do not draw on the budget.
        count = claim.wanted if claim.gpus_per_replica == 0 else min(claim.floor, claim.wanted)
        granted[claim.key] = count
        remaining -= count * claim.gpus_per_replica
    by_key = {c.key: c for c in claims}
    # Max-heap on load per replica; the key breaks ties so the result is deterministic.
    heap = [(-_load_per_replica(c, granted[c.key]), c.key) for c in claims]
    heapq.heapify(heap)
    while heap and remaining > 0:
        _, key = heapq.heappop(heap)
        claim = by_key[key]
        if granted[key] >= claim.wanted or claim.gpus_per_replica > remaining:
            continue  # satisfied, or too large for what is left: others may still fit
        granted[key] += 1
        remaining -= claim.gpus_per_replica
        heapq.heappush(heap, (-_load_per_replica(claim, granted[key]), key))
    return granted


def _load_per_replica(claim: BudgetClaim, replicas: int) -> float:
    demand = claim.demand or 0.0
    if replicas == 0:
        return float("inf") if demand > 0 else 0.0
    return demand / replicas


@dataclass(frozen=True, slots=True)
class Contender:
    """One autoscaler's decision competing for a shared budget."""

    decision: Decision
    policy: ScalingPolicy
    gpus_per_replica: int

    def claim(self, key: str) -> BudgetClaim:
        # An agent whose load is unknown keeps its count: never cut blind.
        floor = self.decision.replicas
        if self.decision.demand is not None:
            floor = min(self.policy.min_replicas, floor)
        return BudgetClaim(key, self.decision.replicas, floor, self.gpus_per_replica,
                           self.decision.demand)  # fmt: skip


def enforce(contenders: Mapping[str, Contender], budget: int, scope: str) -> dict[str, Decision]:
    """The decisions with every cut the budget needs applied (reason ``limited``)."""
    granted = allocate([c.claim(key) for key, c in contenders.items()], budget)
    why = f"{scope} GPU budget of {budget}"
    return {
        key: c.decision
        if granted[key] == c.decision.replicas
        else c.decision.limited_to(granted[key], why)
        for key, c in contenders.items()
    }
