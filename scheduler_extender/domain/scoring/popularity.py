"""Popularity-aware placement: spread hot agents, pack cold ones.

Each replica of an agent is expected to serve rate(agent) / replicas(agent)
requests/s. A node's expected load per GPU is the sum over the replicas it
runs, divided by its GPUs. For a *hot* agent (expected load per replica at or
above ``hot_ratio`` times the mean over known agents) the node whose load per
GPU stays lowest after the placement wins, which keeps the busiest node, the
straggler, as cool as possible. A *cold* agent is packed like GPU bin-packing
so that whole GPU nodes stay free for large pods. Without a forecast for the
agent the policy has no opinion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scheduler_extender.domain.cluster import NodeState
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.gpu_binpack import fill_after
from scheduler_extender.domain.scoring.policy import ScoringContext, neutral


def replica_loads(rates: Mapping[str, float], replicas: Mapping[str, int]) -> dict[str, float]:
    """Expected requests/s one replica of each agent serves."""
    return {agent: rate / max(replicas.get(agent, 0), 1) for agent, rate in rates.items()}


def load_per_gpu(state: NodeState, loads: Mapping[str, float], resource: str) -> float:
    load = sum(count * loads.get(agent, 0.0) for agent, count in state.agents.items())
    return load / max(state.allocatable(resource), 1)


@dataclass(frozen=True, slots=True)
class PopularityAware:
    name: str = "popularity"
    hot_ratio: float = 1.0

    def score(self, pod: Pod, nodes: Sequence[NodeState], ctx: ScoringContext) -> list[float]:
        rate = ctx.popularity.rate(pod.agent)
        if rate is None or pod.agent is None or not nodes:
            return neutral(nodes)
        loads = replica_loads(ctx.popularity.rates, ctx.snapshot.agent_replicas)
        mine = loads[pod.agent]
        mean = sum(loads.values()) / len(loads)
        gpus = pod.requests.get(ctx.gpu_resource)
        if mine < self.hot_ratio * mean:
            return [fill_after(state, gpus, ctx.gpu_resource) for state in nodes]
        after = [
            load_per_gpu(state, loads, ctx.gpu_resource)
            + mine / max(state.allocatable(ctx.gpu_resource), 1)
            for state in nodes
        ]
        low, high = min(after), max(after)
        if high - low <= 1e-12:
            return neutral(nodes)
        return [1.0 - (value - low) / (high - low) for value in after]
