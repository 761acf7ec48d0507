"""A placement: how many pods of each group every node holds, and what that costs.

Moves and evictions are counted per group, because its pods are
interchangeable: a group that keeps ``min(final, original)`` pods on a node
has that many *stays*; of the running pods that do not stay, as many as the
group still places elsewhere are *moves* (a recreated replica lands on
another node), the rest are *evictions* (the group ends with fewer pods
placed than it had running).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.packing.problem import IntArray, PackingProblem


@dataclass(frozen=True, slots=True)
class Placement:
    counts: IntArray  # groups x nodes

    def placed(self) -> IntArray:
        """Per group, the pods placed anywhere."""
        placed: IntArray = self.counts.sum(axis=1)
        return placed


@dataclass(frozen=True, slots=True)
class TierCounts:
    priority: int
    pods: int  # pods of this priority the packer accounts for (pinned included)
    placed: int
    placements: int  # pending pods placed
    moves: int
    evictions: int

    @property
    def disrupted(self) -> int:
        return self.moves + self.evictions


@dataclass(frozen=True, slots=True)
class GroupCosts:
    """Per-group arrays: placed, stays, moves, evictions, new placements."""

    placed: IntArray
    stays: IntArray
    moves: IntArray
    evictions: IntArray
    placements: IntArray


def current_placement(problem: PackingProblem) -> Placement:
    """Running pods where they are, pending pods nowhere."""
    return Placement(problem.original.copy())


def group_costs(problem: PackingProblem, placement: Placement) -> GroupCosts:
    original = problem.original
    running = original.sum(axis=1)
    placed = placement.placed()
    stays = np.minimum(placement.counts, original).sum(axis=1)
    evictions = np.maximum(0, running - placed)
    return GroupCosts(
        placed=placed,
        stays=stays,
        moves=np.minimum(running, placed) - stays,
        evictions=evictions,
        placements=np.maximum(0, placed - running),
    )


def tier_counts(problem: PackingProblem, placement: Placement) -> list[TierCounts]:
    """Per priority tier (highest first): pods, placed, placements, moves, evictions."""
    costs = group_costs(problem, placement)
    pinned = problem.pinned_by_priority()
    priorities = np.array([g.priority for g in problem.groups], dtype=np.int64)
    sizes = np.array([g.size for g in problem.groups], dtype=np.int64)
    out: list[TierCounts] = []
    for priority in problem.tiers:
        member = priorities == priority
        out.append(
            TierCounts(
                priority=priority,
                pods=int(sizes[member].sum()) + pinned.get(priority, 0),
                placed=int(costs.placed[member].sum()) + pinned.get(priority, 0),
                placements=int(costs.placements[member].sum()),
                moves=int(costs.moves[member].sum()),
                evictions=int(costs.evictions[member].sum()),
            )
        )
    return out


def node_load(problem: PackingProblem, placement: Placement) -> IntArray:
    """nodes x resources: pinned load plus the groups' pods."""
    requests = np.array([g.requests for g in problem.groups], dtype=np.int64).reshape(
        len(problem.groups), len(problem.resources)
    )
    load: IntArray = problem.fixed + placement.counts.T @ requests
    return load
