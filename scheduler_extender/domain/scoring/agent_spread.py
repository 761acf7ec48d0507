"""Spread the replicas of one agent across nodes.

Losing a node should not take out every replica of an agent, and replicas on
one node compete for its PCIe/NVLink and network. The node already running
the fewest replicas of the pod's agent scores highest.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler_extender.domain.columns import FloatArray, IntArray
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral


@dataclass(frozen=True, slots=True)
class AgentSpread:
    name: str = "agent_spread"
    audience: Audience = Audience.AGENTS

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        if pod.agent is None or len(rows) == 0:
            return neutral(rows)
        counts = ctx.snapshot.columns.agent_counts(pod.agent, rows)
        most = int(counts.max())
        if most == 0:
            return neutral(rows)
        result: FloatArray = 1.0 - counts / (most + 1)
        return result
