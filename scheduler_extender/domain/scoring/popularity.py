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
from itertools import compress
from operator import is_not

import numpy as np

from scheduler_extender.domain.cluster import NodeState, Snapshot
from scheduler_extender.domain.columns import Columns, FloatArray, IntArray
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.popularity import UNIFORM_GPUS, GpuCapacity, Popularity
from scheduler_extender.domain.preallocation import (
    BoolArray,
    Pending,
    Plan,
    pending_replicas,
    plan,
)
from scheduler_extender.domain.scoring.gpu_binpack import fill_after
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral


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


# Eligibility masks kept at once (distinct pod signatures), and pre-allocation
# plans (one per distinct mask of the pods scored).
MAX_SIGNATURES = 32
MAX_PLANS = 8

Signature = tuple[object, ...]


def eligibility_signature(pod: Pod) -> Signature:
    """What ``Node.admits`` reads of a pod: pods with equal signatures fit the same nodes."""
    return (tuple(sorted(pod.node_selector.items())), pod.required_affinity, pod.tolerations)


class NodeTable:
    """What the nodes themselves say, per row: which pods they admit, what their GPUs serve.

    Kept across snapshots. A snapshot shares its ``NodeState`` (and ``Node``)
    objects with the previous one for every node that did not change, so a new
    snapshot costs one identity pass over its nodes, and ``Node.admits`` runs
    only for the nodes whose ``Node`` changed (cordon, taints, labels), once
    per signature kept, plus once per node for a signature seen for the first
    time. Rows without a node admit everything (they have no GPU to offer).
    Not thread-safe: the policy's lock guards it. The arrays it hands out are
    read-only and never change; an update replaces them.
    """

    def __init__(self, capacity: GpuCapacity = UNIFORM_GPUS) -> None:
        self._capacity = capacity
        self._synced: Mapping[str, NodeState] | None = None
        self._rows: Mapping[str, int] | None = None
        self._names: list[str] = []
        self._states: list[NodeState] = []
        self._order: list[int] = []  # the row of each of _names
        self._row_nodes: list[Node | None] = []
        # signature -> (a pod with it, rows admitting it, whether that is every row)
        self._masks: dict[Signature, tuple[Pod, BoolArray, bool]] = {}
        self._factor: FloatArray | None = None if capacity.uniform else np.zeros(0)
        self.epoch = 0  # changes whenever a node's own facts may have changed

    @property
    def factor(self) -> FloatArray | None:
        """Capacity of one GPU of each row's model; None when every GPU counts 1."""
        return self._factor

    def sync(self, snapshot: Snapshot) -> None:
        nodes = snapshot.nodes
        columns = snapshot.columns
        if nodes is self._synced and columns.rows is self._rows:
            return
        states = list(nodes.values())
        rows: list[int]
        if (
            columns.rows is self._rows
            and columns.size == len(self._row_nodes)
            and len(states) == len(self._states)
            and list(nodes) == self._names
        ):
            moved = compress(range(len(states)), map(is_not, states, self._states))
            changed = [i for i in moved if states[i].node is not self._states[i].node]
            rows = [self._order[i] for i in changed]
            for row, i in zip(rows, changed, strict=True):
                self._row_nodes[row] = states[i].node
        else:  # a node came or went: compare row by row
            names = list(nodes)
            order = columns.rows_of(names).tolist()
            row_nodes: list[Node | None] = [None] * columns.size
            for row, state in zip(order, states, strict=True):
                if row >= 0:
                    row_nodes[row] = state.node
            old = self._row_nodes[: columns.size]
            old += [None] * (columns.size - len(old))
            rows = [r for r, (a, b) in enumerate(zip(row_nodes, old, strict=True)) if a is not b]
            if columns.size != len(self._row_nodes):
                self._resize(columns.size)  # new rows start empty: admitting, capacity 1
            self._names, self._order, self._rows, self._row_nodes = (
                names,
                order,
                columns.rows,
                row_nodes,
            )
        self._states, self._synced = states, nodes
        if rows:
            self._update(rows)

    def mask(self, pod: Pod, signature: Signature) -> BoolArray | None:
        """Rows whose node admits ``pod`` (of ``signature``); None when all do."""
        entry = self._masks.get(signature)
        if entry is None:
            admitted = np.fromiter(
                (n is None or n.admits(pod) for n in self._row_nodes),
                dtype=np.bool_,
                count=len(self._row_nodes),
            )
            admitted.flags.writeable = False
            if len(self._masks) >= MAX_SIGNATURES:
                del self._masks[next(iter(self._masks))]  # the oldest
            self._masks[signature] = entry = (pod, admitted, bool(admitted.all()))
        return None if entry[2] else entry[1]

    def _resize(self, size: int) -> None:
        for signature, (pod, admitted, _) in list(self._masks.items()):
            grown = np.ones(size, dtype=np.bool_)
            grown[: min(size, len(admitted))] = admitted[:size]
            grown.flags.writeable = False
            self._masks[signature] = (pod, grown, bool(grown.all()))
        if self._factor is not None:
            factor = np.full(size, self._capacity.default)
            factor[: min(size, len(self._factor))] = self._factor[:size]
            factor.flags.writeable = False
            self._factor = factor

    def _update(self, rows: list[int]) -> None:
        self.epoch += 1
        at = np.array(rows, dtype=np.int64)
        nodes = [self._row_nodes[r] for r in rows]
        for signature, (pod, admitted, _) in list(self._masks.items()):
            updated = admitted.copy()
            updated[at] = [n is None or n.admits(pod) for n in nodes]
            updated.flags.writeable = False
            self._masks[signature] = (pod, updated, bool(updated.all()))
        if self._factor is not None:
            factor = self._factor.copy()
            default = self._capacity.default
            factor[at] = [default if n is None else self._capacity.of(n.labels) for n in nodes]
            factor.flags.writeable = False
            self._factor = factor


class PopularityAware:
    name = "popularity"
    audience = Audience.AGENTS

    def __init__(self, capacity: GpuCapacity = UNIFORM_GPUS) -> None:
        # Node loads depend only on (columns, popularity, replica counts), and
        # a pre-allocation plan on those and on where each pending agent may
        # go: keep the last results, so a burst of calls on one snapshot
        # computes them once and a plan the cluster follows is kept.
        self._nodes = NodeTable(capacity)
        self._memo: _Memo | None = None
        self._plans: dict[bytes | None, _Planned] = {}  # by the scored pod's eligible rows
        # agent -> the eligibility of its pods, as last scored (a pod template's)
        self._learned: dict[str, tuple[Signature, Pod]] = {}
        self._agent_masks: dict[str, BoolArray | None] = {}  # of learned agents, this epoch
        self._masks_epoch = -1
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

        with self._lock:
            self._nodes.sync(ctx.snapshot)
            signature = eligibility_signature(pod)
            eligible = self._nodes.mask(pod, signature)
            self._learn(pod.agent, signature, pod, replicas)
            memo = self._loads(columns, popularity, replicas, ctx.gpu_resource)
            planned = self._plan(memo, eligible)
        per_node = memo.loads + planned.reserved(columns.size, except_agent=pod.agent)
        if placed is not None:
            # Re-spread the agent's load over its replicas including this pod.
            before = max(rate, 0.0) / max(replicas.get(pod.agent, 0), 1)
            per_node[placed.rows] += placed.counts * (mine - before)
        total_rate = memo.total + (0.0 if pod.agent in replicas else max(rate, 0.0))
        # The level over the nodes the pod may use: the load that is not
        # already on (or planned for) the others, over their capacity.
        if eligible is None:
            usable = float(memo.capacity.sum())
        else:
            usable = float(memo.capacity[eligible].sum())
            total_rate = max(total_rate - float(per_node[~eligible].sum()), 0.0)
        level = total_rate / usable if usable > 0.0 else total_rate

        units = np.maximum(columns.allocatable_of(ctx.gpu_resource, rows), 1).astype(float)
        if memo.factor is not None:
            units *= memo.factor[rows]
        after = (per_node[rows] + mine) / units
        excess = after - level
        own = mine / float(units.max())  # what the replica adds on the largest node
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

    def _learn(
        self, agent: str, signature: Signature, pod: Pod, replicas: Mapping[str, int]
    ) -> None:
        known = self._learned.get(agent)
        if known is None or known[0] != signature:
            self._learned[agent] = (signature, pod)
            self._agent_masks.pop(agent, None)
            if len(self._learned) > 2 * len(replicas) + 64:  # forget agents gone
                for gone in [a for a in self._learned if a not in replicas and a != agent]:
                    del self._learned[gone]
                    self._agent_masks.pop(gone, None)

    def _eligible_of(self, agents: tuple[str, ...]) -> dict[str, BoolArray | None]:
        """Rows each learned agent among ``agents`` may use (None: every row)."""
        if self._masks_epoch != self._nodes.epoch:
            self._agent_masks.clear()
            self._masks_epoch = self._nodes.epoch
        masks: dict[str, BoolArray | None] = {}
        for agent in agents:
            if agent in self._agent_masks:
                masks[agent] = self._agent_masks[agent]
            elif (known := self._learned.get(agent)) is not None:
                masks[agent] = self._agent_masks[agent] = self._nodes.mask(known[1], known[0])
        return masks

    def _loads(
        self, columns: Columns, popularity: Popularity, replicas: Mapping[str, int], gpu: str
    ) -> _Memo:
        memo = self._memo
        epoch = self._nodes.epoch
        if memo is None or not memo.holds(columns, popularity, replicas, gpu, epoch):
            loads = node_loads(columns, replica_loads(popularity.rates, replicas))
            total = sum(
                max(popularity.rates.get(agent, 0.0), 0.0)
                for agent, count in replicas.items()
                if count > 0
            )
            pending = pending_replicas(columns, popularity.rates, replicas)
            gpus = columns.allocatable.get(gpu, np.zeros(columns.size, dtype=np.int64))
            capacity = np.maximum(gpus, 0).astype(float)
            factor = self._nodes.factor
            if factor is not None and len(capacity) == len(factor):
                capacity *= factor
            else:
                factor = None
            memo = _Memo(
                columns,
                popularity,
                replicas,
                gpu,
                epoch,
                loads,
                total,
                tuple(pending),
                tuple(agent for _, agent, _ in pending),
                capacity,
                factor,
            )
            self._memo = memo
        return memo

    def _plan(self, memo: _Memo, eligible: BoolArray | None) -> Plan:
        """The plan for a pod allowed on ``eligible``: agents not seen yet are assumed alike."""
        key = None if eligible is None else eligible.tobytes()
        last = self._plans.pop(key, None)
        masks = self._eligible_of(memo.pending_agents)
        same = last is not None and last.memo.epoch == memo.epoch and _same_masks(last, masks)
        if last is not None and same and last.memo is memo:
            planned = last.plan
        else:
            kept = None
            if (
                last is not None
                and same
                and last.memo.popularity is memo.popularity
                and last.memo.gpu == memo.gpu
            ):
                kept = last.plan.follow(memo.columns, memo.pending)
            planned = (
                kept
                if kept is not None
                else plan(
                    memo.columns,
                    memo.loads,
                    memo.pending,
                    memo.gpu,
                    None if memo.factor is None else memo.capacity,
                    masks,
                    eligible,  # for the agents not seen yet
                )
            )
        if len(self._plans) >= MAX_PLANS:
            del self._plans[next(iter(self._plans))]  # the least recently used
        self._plans[key] = _Planned(memo, masks, planned, eligible)
        return planned


def _same_masks(last: _Planned, masks: Mapping[str, BoolArray | None]) -> bool:
    """Whether every learned pending agent may go where it could when ``last`` was made."""
    for agent, mask in masks.items():
        before = last.masks.get(agent, last.default)
        if before is not mask and (
            before is None or mask is None or not np.array_equal(before, mask)
        ):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Memo:
    """What the policy derives from one snapshot and popularity."""

    columns: Columns
    popularity: Popularity
    replicas: Mapping[str, int]
    gpu: str
    epoch: int  # of the node table
    loads: FloatArray  # predicted requests/s per row, from placed replicas
    total: float  # the total rate of agents with replicas
    pending: tuple[Pending, ...]  # replicas not placed yet, per agent, heaviest first
    pending_agents: tuple[str, ...]
    capacity: FloatArray  # per row: GPUs x the capacity of one GPU of the node's model
    factor: FloatArray | None  # per row: the capacity of one GPU; None: all 1

    def holds(
        self,
        columns: Columns,
        popularity: Popularity,
        replicas: Mapping[str, int],
        gpu: str,
        epoch: int,
    ) -> bool:
        return (
            self.columns is columns
            and self.popularity is popularity
            and self.replicas is replicas
            and self.gpu == gpu
            and self.epoch == epoch
        )


@dataclass(frozen=True, slots=True)
class _Planned:
    """A pre-allocation plan and what it assumed of where the pending agents may go."""

    memo: _Memo
    masks: Mapping[str, BoolArray | None]  # learned agents; the others went to ``default``
    plan: Plan
    default: BoolArray | None = None
