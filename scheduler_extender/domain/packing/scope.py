"""Which nodes get variables when the whole cluster is too big to model in the budget.

The neighbourhood is built for the highest tier that still has unplaced
pods: nodes that could host such a pod once some of their movable pods
leave (fewest resources to clear first), interleaved with the nodes that have
the most room to take the pods that leave. Every other node keeps its
current pods as constants, so a plan found in a scope is a plan for the
cluster; it is only never *proven* optimal unless the scope is everything.
"""

from __future__ import annotations

import numpy as np

from scheduler_extender.domain.packing.placement import Placement, node_load
from scheduler_extender.domain.packing.problem import UNLIMITED, BoolArray, IntArray, PackingProblem


def bounds_matrix(problem: PackingProblem, load: IntArray) -> IntArray:
    """groups x nodes: the most pods of each group every node can hold next to ``load``."""
    if not problem.groups:
        return np.zeros((0, len(problem.nodes)), dtype=np.int64)
    return np.stack([problem.upper_bounds(g, load) for g in problem.groups])


def rank_nodes(problem: PackingProblem, placement: Placement) -> list[int]:
    """Node indices, most useful first, for freeing room for the top unplaced tier."""
    load = node_load(problem, placement)
    capacity = problem.capacity.astype(np.float64)
    finite = (problem.capacity > 0) & (problem.capacity < UNLIMITED)
    scale = np.where(finite, capacity, 1.0)
    free = problem.capacity - load
    roomy = np.where(finite, free / scale, 0.0).sum(axis=1)
    destinations = [int(n) for n in np.lexsort((np.arange(len(roomy)), -roomy))]

    placed = placement.placed()
    unplaced = [g for g in problem.groups if placed[g.index] < g.size]
    if not unplaced:
        return destinations
    top = max(g.priority for g in unplaced)
    movable = load - problem.fixed
    deficit = np.full(len(problem.nodes), np.inf)
    for group in (g for g in unplaced if g.priority == top):
        need = group.requests
        used = (need > 0) & finite.any(axis=0)
        reachable = group.arrivals & np.all(free[:, used] + movable[:, used] >= need[used], axis=1)
        short = np.maximum(0, need[used] - free[:, used]) / scale[:, used]
        deficit = np.where(reachable, np.minimum(deficit, short.sum(axis=1)), deficit)
    targets = [
        int(n) for n in np.lexsort((np.arange(len(deficit)), deficit)) if np.isfinite(deficit[n])
    ]

    interleaved = [n for pair in zip(targets, destinations, strict=False) for n in pair]
    rest = targets[len(destinations) :] + destinations[len(targets) :]
    return list(dict.fromkeys(interleaved + rest))  # first occurrence wins


def choose_scope(
    problem: PackingProblem,
    ranking: list[int],
    bounds: IntArray,
    placement: Placement,
    max_variables: int,
    frozen: BoolArray,
    minimum: int = 2,
) -> BoolArray:
    """The longest prefix of ``ranking`` whose model stays under ``max_variables``."""
    nodes = len(problem.nodes)
    scope = np.zeros(nodes, dtype=np.bool_)
    positive = (bounds > 0) & ~frozen[:, None]
    present = ((problem.original > 0) | (placement.counts > 0)) & ~frozen[:, None]
    active = np.array([bool(g.pending) for g in problem.groups], dtype=np.bool_) & ~frozen
    estimate = 0
    for n in ranking:
        joining = present[:, n] & ~active
        cost = int(positive[active, n].sum())
        cost += int(positive[joining][:, scope].sum()) + int(positive[joining, n].sum())
        if estimate + cost > max_variables and scope.sum() >= minimum:
            break
        estimate += cost
        active |= joining
        scope[n] = True
    return scope
