"""Popularity-aware placement: keep predicted load per GPU level, pack what fits under it.

Each replica of an agent is expected to serve rate(agent) / replicas(agent)
requests/s, where rate is the agent's forecast (already corrected by the
observed rate, see ``domain.forecast.correction``) and replicas counts the
pod being placed. A node's predicted load per GPU is the sum over the
replicas it runs, divided by its GPUs.

The *level* is what every GPU would carry if the load of all agents with
replicas (placed or pending) were spread perfectly: their total rate over all
the cluster's GPUs. For each candidate node the policy looks at the node's
load per GPU after placing the pod:

* at or under the level, the node has room for this load: among such nodes
  the fullest (by GPUs in use) wins, so light (cold) replicas are packed
  tightly and whole GPU nodes stay free for large pods;
* over the level, the further over, the worse. A heavy (hot) replica exceeds
  the level everywhere, so it simply goes where the load per GPU stays lowest.
  For one placement that is also the choice that keeps the highest load per
  GPU across all nodes (the straggler) as low as possible: any other choice
  leaves at least that node's load somewhere.

Replicas created in bulk and not placed yet are pre-allocated: the pending
replicas of the other agents are placed virtually, heaviest first (see
``domain.preallocation``), and count in the node loads above. A replica then
takes the room the others leave instead of the room they need, close to what
placing all of them heaviest first would give, whatever order they come in.
(Its own agent's pending replicas are left out: they get their places the
same way when their turn comes.)

Differences smaller than what the replica itself adds to a node are not blown
up into a 0-vs-1 preference (that would drown the other policies for
nothing). Without a forecast for the agent the policy has no opinion.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.columns import Columns, FloatArray, IntArray
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.preallocation import Plan, pending_replicas, plan
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

    def __init__(self) -> None:
        # Node loads and the pre-allocation plan depend only on (columns,
        # popularity, replica counts): keep the last result, so a burst of
        # calls on one snapshot computes them once.
        self._memo: _Memo | None = None
        self._lock = threading.Lock()

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        popularity = ctx.popularity
        rate = popularity.rate(pod.agent)
        if rate is None or pod.agent is None or len(rows) == 0:
            return neutral(rows)
        columns = ctx.snapshot.columns
        replicas = ctx.snapshot.agent_replicas
        gpus = pod.requests.get(ctx.gpu_resource)
        placed = columns.agents.get(pod.agent)
        # The pod may or may not be counted yet (the watch may not have
        # delivered it): it is one more than the replicas already placed.
        count = max(replicas.get(pod.agent, 0), 1 + (int(placed.counts.sum()) if placed else 0))
        mine = max(rate, 0.0) / count
        if mine <= 0.0:
            return fill_after(columns, rows, gpus, ctx.gpu_resource)

        memo = self._loads(columns, popularity, replicas, ctx.gpu_resource)
        per_node = memo.loads + memo.plan.reserved(columns.size, except_agent=pod.agent)
        if placed is not None:
            # Re-spread the agent's load over its replicas including this pod.
            before = max(rate, 0.0) / max(replicas.get(pod.agent, 0), 1)
            per_node[placed.rows] += placed.counts * (mine - before)
        total_rate = memo.total + (0.0 if pod.agent in replicas else max(rate, 0.0))
        all_gpus = float(
            np.maximum(columns.allocatable.get(ctx.gpu_resource, np.zeros(1)), 0).sum()
        )
        level = total_rate / max(all_gpus, 1.0)

        gpu_count = np.maximum(columns.allocatable_of(ctx.gpu_resource, rows), 1)
        after = (per_node[rows] + mine) / gpu_count
        excess = after - level
        own = mine / float(gpu_count.max())  # what the replica adds on the largest node
        fits = excess <= 1e-12 * max(level, 1.0)
        if not fits.any():
            low = float(after.min())
            spread = max(float(after.max()) - low, own)
            result: FloatArray = 1.0 - (after - low) / spread
            return result
        spread = max(float(excess.max()), own)
        over = 0.5 * (1.0 - np.clip(excess / spread, 0.0, 1.0))
        packed = 0.5 + 0.5 * fill_after(columns, rows, gpus, ctx.gpu_resource)
        scored: FloatArray = np.where(fits, packed, over)
        return scored

    def _loads(
        self, columns: Columns, popularity: Popularity, replicas: Mapping[str, int], gpu: str
    ) -> _Memo:
        with self._lock:
            memo = self._memo
            if memo is None or not memo.holds(columns, popularity, replicas, gpu):
                loads = node_loads(columns, replica_loads(popularity.rates, replicas))
                total = sum(
                    max(popularity.rates.get(agent, 0.0), 0.0)
                    for agent, count in replicas.items()
                    if count > 0
                )
                pending = pending_replicas(columns, popularity.rates, replicas)
                kept = None
                if memo is not None and memo.popularity is popularity and memo.gpu == gpu:
                    kept = memo.plan.follow(columns, pending)
                planned = kept if kept is not None else plan(columns, loads, pending, gpu)
                memo = _Memo(columns, popularity, replicas, gpu, loads, total, planned)
                self._memo = memo
            return memo


@dataclass(frozen=True, slots=True)
class _Memo:
    """What the policy derives from one snapshot and popularity."""

    columns: Columns
    popularity: Popularity
    replicas: Mapping[str, int]
    gpu: str
    loads: FloatArray  # predicted requests/s per row, from placed replicas
    total: float  # the total rate of agents with replicas
    plan: Plan  # pending replicas, placed virtually

    def holds(
        self, columns: Columns, popularity: Popularity, replicas: Mapping[str, int], gpu: str
    ) -> bool:
        return (
            self.columns is columns
            and self.popularity is popularity
            and self.replicas is replicas
            and self.gpu == gpu
        )
