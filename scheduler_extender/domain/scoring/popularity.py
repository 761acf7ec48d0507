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

import threading
from collections.abc import Mapping

import numpy as np

from scheduler_extender.domain.columns import Columns, FloatArray, IntArray
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.scoring.gpu_binpack import fill_after
from scheduler_extender.domain.scoring.policy import ScoringContext, neutral


def replica_loads(rates: Mapping[str, float], replicas: Mapping[str, int]) -> dict[str, float]:
    """Expected requests/s one replica of each agent serves."""
    return {agent: rate / max(replicas.get(agent, 0), 1) for agent, rate in rates.items()}


def node_loads(columns: Columns, loads: Mapping[str, float]) -> FloatArray:
    """Expected requests/s on every row, from the replicas placed there."""
    total = np.zeros(columns.size)
    for agent, load in loads.items():
        placed = columns.agents.get(agent)
        if placed is not None and load:
            total[placed.rows] += placed.counts * load
    return total


class PopularityAware:
    name = "popularity"

    def __init__(self, hot_ratio: float = 1.0) -> None:
        self.hot_ratio = hot_ratio
        # Node loads depend only on (columns, popularity, replica counts): keep
        # the last result, so a burst of calls on one snapshot computes it once.
        self._memo: tuple[Columns, Popularity, Mapping[str, int], FloatArray] | None = None
        self._lock = threading.Lock()

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        popularity = ctx.popularity
        rate = popularity.rate(pod.agent)
        if rate is None or pod.agent is None or len(rows) == 0:
            return neutral(rows)
        replicas = ctx.snapshot.agent_replicas
        loads = replica_loads(popularity.rates, replicas)
        mine = loads[pod.agent]
        mean = sum(loads.values()) / len(loads)
        columns = ctx.snapshot.columns
        gpus = pod.requests.get(ctx.gpu_resource)
        if mine < self.hot_ratio * mean:
            return fill_after(columns, rows, gpus, ctx.gpu_resource)
        per_node = self._node_loads(columns, popularity, replicas, loads)[rows]
        gpu_count = np.maximum(columns.allocatable_of(ctx.gpu_resource, rows), 1)
        after = (per_node + mine) / gpu_count
        low, high = float(after.min()), float(after.max())
        if high - low <= 1e-12:
            return neutral(rows)
        result: FloatArray = 1.0 - (after - low) / (high - low)
        return result

    def _node_loads(
        self,
        columns: Columns,
        popularity: Popularity,
        replicas: Mapping[str, int],
        loads: Mapping[str, float],
    ) -> FloatArray:
        with self._lock:
            memo = self._memo
            if (
                memo is not None
                and memo[0] is columns
                and memo[1] is popularity
                and memo[2] is replicas
            ):
                return memo[3]
            result = node_loads(columns, loads)
            self._memo = (columns, popularity, replicas, result)
            return result
