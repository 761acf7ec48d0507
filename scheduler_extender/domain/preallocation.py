"""Pre-allocation: where the replicas still pending would go, heaviest first.

Controllers create replicas in bulk, and kube-scheduler then places them one
at a time in an order that has nothing to do with their load. Placed greedily
in that order, light replicas spread first and the heavy ones that come last
find every node already loaded: the busiest node ends up a whole heavy
replica above the rest. Placing the heaviest first (LPT, longest processing
time first) is the classic cure, and the snapshot knows enough to do it
virtually: how many replicas of each agent exist but are not placed yet, and
what each is predicted to serve.

``plan`` places the pending replicas virtually, heaviest first, each on the
node with the lowest predicted load per unit of serving capacity (its GPUs
times its GPU model's capacity, see ``domain.popularity.GpuCapacity``) that
has a GPU free and that the replica may use at all: each agent's replicas go
only to the rows its eligibility mask allows (cordon, taints, nodeSelector,
required node affinity; see ``Node.admits``). A policy scoring one replica
counts the others' planned load (``reserved``), so the replica takes the room
they leave rather than the room they need.

A plan is kept while the cluster follows it (``Plan.follow``): a replica
placed where it planned one of its agent's is struck off there, and one placed
elsewhere (kube-scheduler adds its own scores and breaks ties at random)
takes the place its agent had planned last. Only a new or deleted replica, a
changed node set or a new forecast makes a new plan. Planning afresh after
every placement would start each time from the replicas placed so far in their
arbitrary order, drift away from heaviest-first, and cost a plan per pod.

A pending replica is assumed to take one GPU (the snapshot counts pending
replicas, not their requests); only the room left on a node depends on that.
The plan only steers scores, never filtering: a replica that stays pending
(nothing fits it) keeps some load reserved on the least loaded nodes, which
makes them look a little busier than they are until it is placed or deleted.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from scheduler_extender.domain.columns import AgentRows, Columns, FloatArray, IntArray

BoolArray = NDArray[np.bool_]

# Bounds the work per snapshot on a bulk creation of thousands of replicas:
# only the heaviest are planned, and they are the ones whose order matters.
MAX_PLANNED = 512

# (requests/s of one replica, agent, replicas): an agent's pending replicas, as one entry.
Pending = tuple[float, str, int]


@dataclass(frozen=True, slots=True)
class Plan:
    """Pending replicas placed virtually: predicted requests/s per node row."""

    total: FloatArray  # per row, all planned replicas
    agents: Mapping[str, tuple[IntArray, float]]  # agent -> rows of its replicas, load of each
    # What the plan started from, to tell whether the cluster still follows it.
    node_rows: Mapping[str, int]
    placed: Mapping[str, AgentRows | None]  # agent -> where its replicas ran then

    def reserved(self, size: int, except_agent: str) -> FloatArray:
        """Planned requests/s per row of every agent but ``except_agent`` (a fresh array)."""
        if len(self.total) == 0:
            return np.zeros(size)
        per_row = self.total.copy()
        own = self.agents.get(except_agent)
        if own is not None:
            np.subtract.at(per_row, own[0], own[1])
        return per_row

    def follow(self, columns: Columns, pending: Sequence[Pending]) -> Plan | None:
        """This plan without the replicas placed since, or None if the cluster left it.

        It still holds when the plan had a place for every replica placed since
        (``_strike_off``) and the replicas it has left are still the heaviest
        pending ones (``_still_heaviest``).
        """
        if columns.rows is not self.node_rows:  # a node came or went (the table's size too)
            return None
        total = self.total.copy()
        agents: dict[str, tuple[IntArray, float]] = {}
        for agent, (rows, load) in self.agents.items():
            now = columns.agents.get(agent)
            if now is not self.placed[agent]:
                landed = _per_row(now, columns.size) - _per_row(self.placed[agent], columns.size)
                if (landed < 0).any():
                    return None  # a replica went away: the pending count changed too
                kept = _strike_off(rows.tolist(), landed)
                if kept is None:
                    return None
                gone = np.bincount(rows, minlength=columns.size)
                gone -= np.bincount(kept, minlength=columns.size)
                total -= gone * load
                rows = np.array(kept, dtype=np.int64)
            if len(rows):
                agents[agent] = (rows, load)
        left_over = Counter({agent: len(rows) for agent, (rows, _) in agents.items()})
        if not _still_heaviest(left_over, agents, pending):
            return None
        return _plan_of(columns, total, agents)


def _strike_off(planned: list[int], landed: IntArray) -> list[int] | None:
    """``planned`` (rows in plan order) without the replicas that ``landed`` since.

    A replica that landed on a row planned for its agent takes that row's
    place; one that landed elsewhere (kube-scheduler weighs its own scores
    too, and breaks ties at random) takes the place planned last, the least
    wanted. None if more landed than were planned.
    """
    owed = landed.copy()
    kept = []
    for row in planned:
        if owed[row] > 0:
            owed[row] -= 1
        else:
            kept.append(row)
    elsewhere = int(owed.sum())
    if elsewhere > len(kept):
        return None
    return kept[: len(kept) - elsewhere]


def _still_heaviest(
    left_over: Counter[str],
    agents: Mapping[str, tuple[IntArray, float]],
    pending: Sequence[Pending],
) -> bool:
    """Whether the replicas the plan has left are the pending ones it would plan now.

    They are when they are exactly the pending replicas; or, when the pending
    list is cut at ``MAX_PLANNED``, when they are all still pending and the
    others are no heavier than any of them: the lighter replicas that moved up
    into the list as planned ones were placed, which a new plan would place last.
    """
    wanted = Counter({agent: count for _, agent, count in pending})
    if left_over == wanted:
        return True
    if sum(wanted.values()) < MAX_PLANNED or left_over - wanted:
        return False
    lightest = min((load for _, load in agents.values()), default=0.0)
    extra = wanted - left_over
    return all(load <= lightest for load, agent, _ in pending if agent in extra)


def _per_row(placed: AgentRows | None, size: int) -> IntArray:
    return placed.per_row(size) if placed is not None else np.zeros(size, dtype=np.int64)


def _plan_of(
    columns: Columns, total: FloatArray, agents: dict[str, tuple[IntArray, float]]
) -> Plan:
    placed = {agent: columns.agents.get(agent) for agent in agents}
    return Plan(total, MappingProxyType(agents), columns.rows, MappingProxyType(placed))


EMPTY_PLAN = Plan(np.zeros(0), MappingProxyType({}), MappingProxyType({}), MappingProxyType({}))


def pending_replicas(
    columns: Columns, rates: Mapping[str, float], replicas: Mapping[str, int]
) -> list[Pending]:
    """The replicas not placed yet, per agent, heaviest first (at most MAX_PLANNED in all)."""
    unplaced: list[Pending] = []
    for agent, count in replicas.items():
        rate = rates.get(agent, 0.0)
        placed = columns.agents.get(agent)
        left = count - (int(placed.counts.sum()) if placed is not None else 0)
        if rate > 0.0 and left > 0:
            unplaced.append((rate / count, agent, left))
    unplaced.sort(key=lambda entry: (-entry[0], entry[1]))
    pending: list[Pending] = []
    room = MAX_PLANNED
    for load, agent, left in unplaced:
        if room <= 0:
            break
        pending.append((load, agent, min(left, room)))
        room -= pending[-1][2]
    return pending


def plan(
    columns: Columns,
    node_loads: FloatArray,
    pending: Sequence[Pending],
    gpu_resource: str,
    capacity: FloatArray | None = None,
    eligible: Mapping[str, BoolArray | None] | None = None,
    default: BoolArray | None = None,
) -> Plan:
    """LPT placement of ``pending`` over the nodes with free GPUs, from ``node_loads``.

    ``capacity`` is what each row serves (its GPUs when None); a replica goes to
    the eligible row with free GPUs and the lowest load per unit of capacity.
    The rows an agent's replicas may use are ``eligible[agent]``, or ``default``
    for an agent not in it; None allows every row.
    """
    gpus = columns.allocatable.get(gpu_resource)
    free = columns.free.get(gpu_resource)
    if not pending or gpus is None or free is None:
        return EMPTY_PLAN
    size_of = gpus.astype(float) if capacity is None else capacity
    open_mask = (free > 0) & (gpus > 0) & (size_of > 0)
    # Agents that may use the same rows share one heap of candidate rows.
    group_of: dict[str, int] = {}
    masks: list[BoolArray | None] = []
    for _, agent, _ in pending:
        if agent not in group_of:
            mask = eligible.get(agent, default) if eligible is not None else default
            at = next((g for g, m in enumerate(masks) if m is mask), len(masks))
            if at == len(masks):
                masks.append(mask)
            group_of[agent] = at
    replicas = sum(count for _, _, count in pending)
    # Greedy LPT with k replicas only ever reaches the k least loaded rows a
    # group may use: each of them taken before means one replica placed before.
    group_rows: list[IntArray] = []
    for mask in masks:
        rows = np.flatnonzero(open_mask if mask is None else open_mask & mask)
        if len(rows) > replicas:
            per_gpu = node_loads[rows] / size_of[rows]
            rows = rows[np.argpartition(per_gpu, replicas - 1)[:replicas]]
        group_rows.append(rows)
    candidates = group_rows[0] if len(masks) == 1 else np.unique(np.concatenate(group_rows))
    index = {row: i for i, row in enumerate(candidates.tolist())}
    level = (node_loads[candidates] / size_of[candidates]).tolist()
    room = free[candidates].tolist()
    size = size_of[candidates].astype(float).tolist()
    stamp = [0] * len(candidates)  # an entry is current while its row's stamp is unchanged
    member: list[list[int]] = [[] for _ in candidates]
    heaps: list[list[tuple[float, int, int, int]]] = []
    for g, rows in enumerate(group_rows):
        heap = []
        for row in rows.tolist():
            i = index[row]
            member[i].append(g)
            heap.append((level[i], row, 0, i))
        heapq.heapify(heap)
        heaps.append(heap)
    rows_of: dict[str, list[int]] = {}
    for load, agent in _one_by_one(pending):
        heap = heaps[group_of[agent]]
        while heap and heap[0][2] != stamp[heap[0][3]]:
            heapq.heappop(heap)  # an older entry of a row placed on since
        if not heap:
            continue  # nothing this agent may use has a GPU free
        _, row, _, i = heapq.heappop(heap)
        rows_of.setdefault(agent, []).append(row)
        room[i] -= 1
        stamp[i] += 1
        if room[i] > 0:
            level[i] += load / size[i]
            for g in member[i]:
                heapq.heappush(heaps[g], (level[i], row, stamp[i], i))
    loads = {agent: load for load, agent, _ in pending}
    agents = {a: (np.array(rows, dtype=np.int64), loads[a]) for a, rows in rows_of.items()}
    total = np.zeros(columns.size)
    for rows, load in agents.values():
        np.add.at(total, rows, load)
    return _plan_of(columns, total, agents)


def _one_by_one(pending: Sequence[Pending]) -> Iterator[tuple[float, str]]:
    for load, agent, count in pending:
        for _ in range(count):
            yield load, agent
