"""Popularity-aware placement: spread hot agents, pack cold ones.

Each replica of an agent is expected to serve rate(agent) / replicas(agent)
requests/s, where rate is the agent's forecast (already corrected by the
observed rate, see ``domain.forecast.correction``) and replicas counts the
pod being placed. A node's predicted load per GPU is the sum over the
replicas it runs, divided by its GPUs.

* A *hot* replica (predicted load at least ``hot_ratio`` times the average
  load per replica) goes where the node's load per GPU stays lowest after
  the placement. For one placement that is also the choice that keeps the
  highest load per GPU across all nodes (the straggler) as low as possible:
  every other choice ends with at least that node's load somewhere.
* A *cold* replica is packed like GPU bin-packing, so whole GPU nodes stay
  free for large pods and hot replicas.

Scores are relative, but a difference smaller than what the replica itself
adds to a node is not blown up into a 0-vs-1 preference (it would drown the
other policies for nothing). Without a forecast for the agent the policy has
no opinion.
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
        columns = ctx.snapshot.columns
        replicas = ctx.snapshot.agent_replicas
        placed = columns.agents.get(pod.agent)
        # The pod may or may not be counted yet (the watch may not have
        # delivered it): it is one more than the replicas already placed.
        mine_count = max(
            replicas.get(pod.agent, 0), 1 + (int(placed.counts.sum()) if placed else 0)
        )
        mine = max(rate, 0.0) / mine_count
        total_load = mine * mine_count
        total_replicas = mine_count
        for agent, count in replicas.items():
            agent_rate = popularity.rates.get(agent)
            if agent != pod.agent and agent_rate is not None and count > 0:
                total_load += max(agent_rate, 0.0)
                total_replicas += count
        average = total_load / total_replicas
        gpus = pod.requests.get(ctx.gpu_resource)
        if mine <= 0.0 or mine < self.hot_ratio * average:
            return fill_after(columns, rows, gpus, ctx.gpu_resource)

        per_node = self._node_loads(columns, popularity, replicas)
        if placed is not None:
            # Re-spread the agent's load over its replicas including this pod.
            old = max(rate, 0.0) / max(replicas.get(pod.agent, 0), 1)
            per_node = per_node.copy()
            per_node[placed.rows] += placed.counts * (mine - old)
        gpu_count = np.maximum(columns.allocatable_of(ctx.gpu_resource, rows), 1)
        after = (per_node[rows] + mine) / gpu_count
        low, high = float(after.min()), float(after.max())
        spread = max(high - low, mine / float(gpu_count.max()))
        if spread <= 1e-12:
            return neutral(rows)
        result: FloatArray = 1.0 - (after - low) / spread
        return result

    def _node_loads(
        self, columns: Columns, popularity: Popularity, replicas: Mapping[str, int]
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
            result = node_loads(columns, replica_loads(popularity.rates, replicas))
            self._memo = (columns, popularity, replicas, result)
            return result
