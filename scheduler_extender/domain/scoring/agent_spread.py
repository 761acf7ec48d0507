"""Spread the replicas of one agent across nodes.

Losing a node should not take out every replica of an agent, and replicas on
one node compete for its PCIe/NVLink and network. The node already running
the fewest replicas of the pod's agent scores highest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler_extender.domain.cluster import NodeState
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.policy import ScoringContext, neutral


@dataclass(frozen=True, slots=True)
class AgentSpread:
    name: str = "agent_spread"

    def score(self, pod: Pod, nodes: Sequence[NodeState], ctx: ScoringContext) -> list[float]:
        if pod.agent is None:
            return neutral(nodes)
        counts = [state.agents.get(pod.agent, 0) for state in nodes]
        most = max(counts, default=0)
        if most == 0:
            return neutral(nodes)
        return [1.0 - count / (most + 1) for count in counts]
