"""A packing plan: concrete actions on named pods, and what they achieve per tier.

Actions come from the final per-group counts. On each node a group keeps
``min(final, original)`` of its running pods (the first ones by name) and the
others leave; free slots on other nodes take leaving pods first (moves), then
pending pods (placements); leaving pods left over are evicted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from scheduler_extender.domain.objects import Owner, Pod
from scheduler_extender.domain.packing.placement import Placement, TierCounts, tier_counts
from scheduler_extender.domain.packing.problem import PackingProblem, template_hash
from scheduler_extender.domain.packing.solver import SolveResult, StageRecord

PLAN_API_VERSION = "scheduler-extender.io/v1alpha1"
PLAN_KIND = "PackingPlan"


class ActionKind(StrEnum):
    PLACE = "place"  # bind a pending pod to ``node``
    MOVE = "move"  # evict a running pod from ``source``; its replacement goes to ``node``
    EVICT = "evict"  # evict a running pod from ``node``; it cannot be placed anywhere


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    pod: Pod
    node: str  # target node (place, move) or the node it leaves (evict)
    source: str = ""  # move only: the node the pod runs on now

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": str(self.kind),
            "pod": self.pod.key,
            "uid": self.pod.uid,
            "priority": self.pod.priority,
        }
        if self.kind is ActionKind.MOVE:
            out["from"] = self.source
            out["to"] = self.node
        else:
            out["node"] = self.node
        if self.kind is not ActionKind.PLACE:
            out["owner"] = _owner_json(self.pod.owner)
            out["templateHash"] = template_hash(self.pod)
        return out


@dataclass(frozen=True, slots=True)
class TierOutcome:
    priority: int
    pods: int
    placed_before: int  # running now
    placed_default: int  # after kube-scheduler's greedy placement of pending pods
    placed_after: int  # after the plan
    placements: int
    moves: int
    evictions: int
    # The tier's optimum is proven, and so is every tier above it.
    proven_optimal: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "priority": self.priority,
            "pods": self.pods,
            "placedBefore": self.placed_before,
            "placedDefault": self.placed_default,
            "placedAfter": self.placed_after,
            "placements": self.placements,
            "moves": self.moves,
            "evictions": self.evictions,
            "provenOptimal": self.proven_optimal,
        }


class PlanStatus(StrEnum):
    OPTIMAL = "OPTIMAL"  # every tier proven
    FEASIBLE = "FEASIBLE"  # a valid plan, not proven optimal everywhere


@dataclass(frozen=True, slots=True)
class SolveStats:
    time_limit: float
    workers: int
    wall_seconds: float  # from the start of problem building to the finished plan
    build_seconds: float  # model building inside the solve
    first_improvement_seconds: float | None
    scope_nodes: int
    total_nodes: int
    groups: int
    variables: int
    stages: tuple[StageRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "timeLimitSeconds": self.time_limit,
            "workers": self.workers,
            "wallSeconds": round(self.wall_seconds, 4),
            "modelBuildSeconds": round(self.build_seconds, 4),
            "firstImprovementSeconds": None
            if self.first_improvement_seconds is None
            else round(self.first_improvement_seconds, 4),
            "scopeNodes": self.scope_nodes,
            "totalNodes": self.total_nodes,
            "groups": self.groups,
            "variables": self.variables,
            "stages": [
                {
                    "priority": s.priority,
                    "stage": str(s.kind),
                    "status": str(s.status),
                    "seconds": round(s.seconds, 4),
                    "improved": s.improved,
                    "scopeNodes": s.scope_nodes,
                }
                for s in self.stages
            ],
        }


@dataclass(frozen=True, slots=True)
class Plan:
    status: PlanStatus
    actions: tuple[Action, ...]
    tiers: tuple[TierOutcome, ...]  # highest priority first
    stats: SolveStats
    pinned: Mapping[str, int]  # reason -> running pods pinned for it
    skipped: tuple[tuple[Pod, str], ...]  # pending pods left to kube-scheduler, with why

    @property
    def optimal(self) -> bool:
        return self.status is PlanStatus.OPTIMAL

    @property
    def improves_on_default(self) -> bool:
        """More pods placed than the default, comparing tiers highest first."""
        after = [t.placed_after for t in self.tiers]
        default = [t.placed_default for t in self.tiers]
        return after > default

    @property
    def disruptive(self) -> bool:
        return any(a.kind is not ActionKind.PLACE for a in self.actions)

    def to_json(self) -> dict[str, Any]:
        return {
            "apiVersion": PLAN_API_VERSION,
            "kind": PLAN_KIND,
            "status": str(self.status),
            "optimal": self.optimal,
            "improvesOnDefault": self.improves_on_default,
            "tiers": [t.to_json() for t in self.tiers],
            "actions": [a.to_json() for a in self.actions],
            "pinned": dict(sorted(self.pinned.items())),
            "skipped": [{"pod": p.key, "uid": p.uid, "reason": r} for p, r in self.skipped],
            "solver": self.stats.to_json(),
        }


def build_plan(
    problem: PackingProblem,
    result: SolveResult,
    final: Placement,
    *,
    time_limit: float,
    workers: int,
    wall_seconds: float,
) -> Plan:
    """The plan that turns the current placement into ``final``."""
    before = {t.priority: t for t in tier_counts(problem, Placement(problem.original))}
    default = {t.priority: t for t in tier_counts(problem, result.default)}
    after = tier_counts(problem, final)
    tiers: list[TierOutcome] = []
    chain = True
    for counts in after:
        chain = chain and result.proven.get(counts.priority, False)
        tiers.append(_outcome(counts, before[counts.priority], default[counts.priority], chain))
    stats = SolveStats(
        time_limit=time_limit,
        workers=workers,
        wall_seconds=wall_seconds,
        build_seconds=result.build_seconds,
        first_improvement_seconds=result.first_improvement_seconds,
        scope_nodes=result.scope_nodes,
        total_nodes=len(problem.nodes),
        groups=len(problem.groups),
        variables=result.variables,
        stages=result.stages,
    )
    return Plan(
        status=PlanStatus.OPTIMAL if chain else PlanStatus.FEASIBLE,
        actions=tuple(actions_for(problem, final)),
        tiers=tuple(tiers),
        stats=stats,
        pinned=dict(Counter(str(reason) for _, reason in problem.pinned)),
        skipped=tuple((pod, str(reason)) for pod, reason in problem.skipped),
    )


def actions_for(problem: PackingProblem, final: Placement) -> list[Action]:
    names = [n.name for n in problem.nodes]
    actions: list[Action] = []
    for group in problem.groups:
        counts = final.counts[group.index]
        leaving: list[tuple[Pod, str]] = []
        slots: list[str] = []
        for n in np.flatnonzero(counts | problem.original[group.index]).tolist():
            running = group.running.get(n, ())
            keep = min(int(counts[n]), len(running))
            leaving += [(pod, names[n]) for pod in running[keep:]]
            slots += [names[n]] * (int(counts[n]) - keep)
        movers = min(len(leaving), len(slots))
        for (pod, source), target in zip(leaving[:movers], slots[:movers], strict=True):
            actions.append(Action(ActionKind.MOVE, pod, target, source))
        for pod, target in zip(group.pending, slots[movers:], strict=False):
            actions.append(Action(ActionKind.PLACE, pod, target))
        for pod, source in leaving[movers:]:
            actions.append(Action(ActionKind.EVICT, pod, source))
    order = {ActionKind.EVICT: 0, ActionKind.MOVE: 1, ActionKind.PLACE: 2}
    # Room is made before it is used: evictions, then moves, then placements,
    # each from the highest priority down.
    actions.sort(key=lambda a: (order[a.kind], -a.pod.priority, a.pod.key))
    return actions


def _outcome(
    after: TierCounts, before: TierCounts, default: TierCounts, proven: bool
) -> TierOutcome:
    return TierOutcome(
        priority=after.priority,
        pods=after.pods,
        placed_before=before.placed,
        placed_default=default.placed,
        placed_after=after.placed,
        placements=after.placements,
        moves=after.moves,
        evictions=after.evictions,
        proven_optimal=proven,
    )


def _owner_json(owner: Owner | None) -> dict[str, str] | None:
    if owner is None:
        return None
    return {"kind": owner.kind, "name": owner.name, "uid": owner.uid}
