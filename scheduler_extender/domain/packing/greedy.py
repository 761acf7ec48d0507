"""A deterministic, default-scheduler-like baseline that places pods one by one.

It mimics kube-scheduler without preemption: the queue is ordered by priority
(highest first), then by name (standing in for creation time); each pod goes
to the feasible node with the highest NodeResourcesFit *LeastAllocated* score
over cpu and memory, ties broken by node name (as the paper's deterministic
scorer does). Nothing already placed ever moves.

The same routine fills the gaps a time-limited solve may leave: pods that are
still unplaced (pending, or displaced by the plan) are put back where they
fit, preferring the node they run on now.
"""

from __future__ import annotations

import numpy as np

from scheduler_extender.domain.packing.placement import Placement, current_placement, node_load
from scheduler_extender.domain.packing.problem import BoolArray, Group, IntArray, PackingProblem
from scheduler_extender.domain.resources import CPU, MEMORY


def place_greedily(problem: PackingProblem, start: Placement) -> Placement:
    """``start`` plus every unplaced pod that fits somewhere, placed one at a time.

    A gang (``PackingProblem.gangs``) is placed whole when its turn comes (its
    first pod in the queue), or not at all.
    """
    counts = start.counts.copy()
    load = node_load(problem, start)
    agents = AgentCounts(problem, counts, problem.original)
    gang_of = {g: gang for gang in problem.gangs for g in gang}
    done: set[tuple[int, ...]] = set()
    for group in _queue(problem, counts):
        gang = gang_of.get(group.index)
        if gang is None:
            _place(problem, group, counts, load, agents)
        elif gang not in done:
            done.add(gang)
            _place_gang(problem, gang, counts, load, agents)
    return Placement(counts)


def _place_gang(
    problem: PackingProblem,
    gang: tuple[int, ...],
    counts: IntArray,
    load: IntArray,
    agents: AgentCounts,
) -> None:
    placed: list[tuple[Group, int]] = []
    for g in gang:
        group = problem.groups[g]
        for _ in range(group.size - int(counts[g].sum())):
            node = _place(problem, group, counts, load, agents)
            if node is None:
                for undo, at in placed:  # all or nothing
                    counts[undo.index, at] -= 1
                    load[at] -= undo.requests
                    agents.add(undo, at, -1)
                return
            placed.append((group, node))


def _place(
    problem: PackingProblem,
    group: Group,
    counts: IntArray,
    load: IntArray,
    agents: AgentCounts,
) -> int | None:
    """One more pod of ``group`` where kube-scheduler would put it; None if none fits."""
    capacity = problem.capacity
    request = group.requests
    used = request > 0
    fits = np.all(load[:, used] + request[used] <= capacity[:, used], axis=1)
    returning = counts[group.index] < problem.original[group.index]
    feasible = fits & (
        (group.arrivals & agents.arrival_room(group)) | (returning & agents.room(group))
    )
    if not feasible.any():
        return None
    if (feasible & returning).any():
        feasible &= returning  # a displaced pod goes back first: a stay, not a move
    scored = np.array([problem.resources.index(CPU), problem.resources.index(MEMORY)])
    node = _least_allocated(load, capacity, request, scored, feasible)
    counts[group.index, node] += 1
    load[node] += request
    agents.add(group, node)
    return node


def default_placement(problem: PackingProblem) -> Placement:
    """What kube-scheduler would do now: running pods stay, pending pods placed greedily."""
    return place_greedily(problem, current_placement(problem))


def _queue(problem: PackingProblem, counts: IntArray) -> list[Group]:
    """One entry per unplaced pod, highest priority first, then by pod name."""
    entries: list[tuple[int, str, str, int, Group]] = []
    for group in problem.groups:
        missing = group.size - int(counts[group.index].sum())
        names = [*group.pending, *(p for pods in group.running.values() for p in pods)]
        for k in range(missing):
            pod = names[min(k, len(names) - 1)]
            entries.append((-group.priority, pod.namespace, pod.name, k, group))
    entries.sort(key=lambda e: e[:4])
    return [e[4] for e in entries]


def _least_allocated(
    load: IntArray, capacity: IntArray, request: IntArray, scored: IntArray, feasible: BoolArray
) -> int:
    candidates = np.flatnonzero(feasible)
    cap = capacity[np.ix_(candidates, scored)].astype(np.float64)
    after = (load[np.ix_(candidates, scored)] + request[scored]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        free = np.where(cap > 0, (cap - after) / cap, 0.0)
    score = np.floor(free.mean(axis=1) * 100)  # kube-scheduler scores are integers 0..100
    return int(candidates[int(np.argmax(score))])  # first maximum: the lowest node name


class AgentCounts:
    """Replicas per agent and node, against the extender's per-node limit."""

    def __init__(self, problem: PackingProblem, counts: IntArray, original: IntArray) -> None:
        self.limit = problem.max_agent_replicas_per_node
        self.now: dict[str, IntArray] = {}
        self.allowed: dict[str, IntArray] = {}
        if not self.limit:
            return
        arrived: dict[str, BoolArray] = {}  # nodes a group of the agent newly arrived on
        for group in problem.groups:
            if group.agent is None:
                continue
            if group.agent not in self.now:
                fixed = np.array(
                    [f.get(group.agent, 0) for f in problem.fixed_agents], dtype=np.int64
                )
                self.now[group.agent] = fixed.copy()
                self.allowed[group.agent] = fixed.copy()
                arrived[group.agent] = np.zeros(len(fixed), dtype=np.bool_)
            self.now[group.agent] += counts[group.index]
            self.allowed[group.agent] += original[group.index]
            arrived[group.agent] |= counts[group.index] > original[group.index]
        for agent in self.allowed:
            # A node already above the limit may keep its replicas, never gain any; once
            # the plan gave it new ones (the solver, having taken enough away), the limit
            # holds there again.
            kept = np.maximum(self.allowed[agent], self.limit)
            self.allowed[agent] = np.where(arrived[agent], self.limit, kept)

    def room(self, group: Group) -> BoolArray:
        """Where one more replica of ``group``'s agent may be (a replica coming back)."""
        if not self.limit or group.agent is None:
            return np.ones(1, dtype=np.bool_)
        return self.now[group.agent] + 1 <= self.allowed[group.agent]

    def arrival_room(self, group: Group) -> BoolArray:
        """Where a replica may newly arrive: under the limit, and never on a node that was
        above it (only the solver can prove a plan takes enough replicas off it)."""
        if not self.limit or group.agent is None:
            return np.ones(1, dtype=np.bool_)
        allowed = self.allowed[group.agent]
        return (self.now[group.agent] + 1 <= allowed) & (allowed <= self.limit)

    def add(self, group: Group, node: int, count: int = 1) -> None:
        if self.limit and group.agent is not None:
            self.now[group.agent][node] += count
