"""Lexicographic solving over priority tiers, highest first, within one time budget.

For each tier, two stages on the same model, each fixing its optimum (or the
best value found) before the next stage and the next tier:

1. *place*: fewest evictions of the tier, then most pods of the tier placed
   (one objective: ``placed - big * evictions``). Evictions come first because
   a pod may only be evicted for a pod of *higher* priority: with the higher
   tiers fixed, the fewest evictions the tier can have are exactly the ones
   the higher tiers force;
2. *disrupt*: fewest moves of the tier (most pods staying where they are).

Every stage starts from the incumbent, a complete feasible placement used as
the hint and as a lower bound. The first incumbent is the default placement
(kube-scheduler's greedy choice for the pending pods), so a proof at the top
tier certifies that default optimal; the single-move heuristic (``moves``)
then improves it before the first solve when it can. Tiers the default
completes are fixed, so their pod-only groups become constants
(``frozen_groups``). A stage whose optimum is evident from the
incumbent (the whole tier placed with no eviction; no move) is proven without
calling the solver. A solution is adopted only when strictly better than the
incumbent, so lower tiers never inherit arbitrary churn from a tie.

Time: model building and every stage draw from one deadline; each stage gets
a share of what is left, weighted towards placement stages, and unused time
rolls over. When the model of the whole cluster would exceed
``max_variables``, a neighbourhood of nodes is modelled (see ``scope``) and
widened while time remains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from ortools.sat.python import cp_model

from scheduler_extender.domain.packing.greedy import default_placement
from scheduler_extender.domain.packing.model import ScopedModel, Tier
from scheduler_extender.domain.packing.moves import make_room_by_moves
from scheduler_extender.domain.packing.placement import (
    Placement,
    TierCounts,
    group_costs,
    node_load,
    tier_counts,
)
from scheduler_extender.domain.packing.problem import BoolArray, IntArray, PackingProblem
from scheduler_extender.domain.packing.scope import bounds_matrix, choose_scope, rank_nodes

Clock = Callable[[], float]

# Variables one second of budget affords for a whole-cluster model on 2 cores:
# beyond it, CP-SAT rarely even improves on its hint in time (BENCHMARKS.md),
# and searching neighbourhoods of nodes finds improvements sooner.
VARIABLES_PER_SECOND = 4_000
# A neighbourhood round may use this share of the time left, so that later
# rounds (re-ranked around the new incumbent, twice as large) get their turn.
ROUND_SHARE = 0.4
# Smaller models keep CP-SAT's full presolve: it helps proofs and costs little.
LIGHT_PRESOLVE_ABOVE = 1_000
# The most of the time left the single-move heuristic may take.
HEURISTIC_SHARE = 0.1
# Time weights: placing pods matters more than sparing moves.
PLACE_WEIGHT, DISRUPT_WEIGHT = 4, 1


class StageKind(StrEnum):
    MOVES = "moves"  # the single-move heuristic before the solver (see moves.py)
    PLACE = "place"
    DISRUPT = "disrupt"


class StageStatus(StrEnum):
    OPTIMAL = "OPTIMAL"  # the solver proved the stage optimum (in its scope)
    FEASIBLE = "FEASIBLE"  # the solver stopped at the time limit with a solution
    UNKNOWN = "UNKNOWN"  # the solver stopped before finding any solution
    TRIVIAL = "TRIVIAL"  # optimal by inspection of the incumbent, no solve needed
    NOT_RUN = "NOT_RUN"  # no time left


@dataclass(frozen=True, slots=True)
class SolveOptions:
    time_limit: float = 1.0  # seconds, including model building
    workers: int = 2
    max_variables: int | None = None  # None: VARIABLES_PER_SECOND * time_limit
    random_seed: int = 0
    # Share of the limit kept for turning the solution into a plan.
    reserve: float = 0.05

    @property
    def variable_budget(self) -> int:
        if self.max_variables is not None:
            return self.max_variables
        return max(2_000, int(VARIABLES_PER_SECOND * self.time_limit))


@dataclass(frozen=True, slots=True)
class StageRecord:
    priority: int
    kind: StageKind
    status: StageStatus
    seconds: float
    improved: bool
    scope_nodes: int


@dataclass(frozen=True, slots=True)
class SolveResult:
    default: Placement
    placement: Placement
    # Per tier: the tier's optimum is proven, given the tiers above it.
    proven: Mapping[int, bool]
    stages: tuple[StageRecord, ...]
    scope_nodes: int
    variables: int
    build_seconds: float
    first_improvement_seconds: float | None  # since the start, if the default was improved


@dataclass
class _Run:
    """Mutable state of one solve: incumbent, deadline and what happened."""

    problem: PackingProblem
    options: SolveOptions
    clock: Clock
    start: float
    deadline: float
    incumbent: Placement
    upper: dict[int, int]  # per tier: the most group pods that can possibly be placed
    stages: list[StageRecord] = field(default_factory=list)
    build_seconds: float = 0.0
    first_improvement: float | None = None
    improved_yet: bool = False
    _counted: Placement | None = None
    _counts: dict[int, TierCounts] = field(default_factory=dict)

    round_deadline: float = float("inf")

    def remaining(self) -> float:
        return min(self.deadline, self.round_deadline) - self.clock()

    def counts(self, priority: int) -> TierCounts:
        if self._counted is not self.incumbent:
            self._counts = {t.priority: t for t in tier_counts(self.problem, self.incumbent)}
            self._counted = self.incumbent
        return self._counts[priority]


def solve(
    problem: PackingProblem,
    options: SolveOptions,
    clock: Clock = time.perf_counter,
    start: float | None = None,
) -> SolveResult:
    """Improve on the default placement of ``problem`` within ``options.time_limit``."""
    start = clock() if start is None else start
    default = default_placement(problem)
    bounds = bounds_matrix(problem, problem.fixed)
    run = _Run(
        problem=problem,
        options=options,
        clock=clock,
        start=start,
        deadline=start + options.time_limit * (1 - options.reserve),
        incumbent=default,
        upper=_upper_bounds(problem, bounds),
    )
    proven: dict[int, bool] = {}
    scope_nodes, variables = 0, 0
    if any(not _trivially_placed(run, t) for t in problem.tiers):
        budget = options.variable_budget
        ranking = rank_nodes(problem, default)
        frozen = frozen_groups(run)
        _make_room(run)
        # Bounds next to the frozen load too: tighter, and the tier bounds with them.
        bounds = bounds_matrix(
            problem, node_load(problem, Placement(default.counts * frozen[:, None]))
        )
        run.upper = _upper_bounds(problem, bounds)
        while True:
            scope = choose_scope(problem, ranking, bounds, run.incumbent, budget, frozen)
            whole = bool(scope.all())
            run.round_deadline = (
                float("inf") if whole else clock() + ROUND_SHARE * (run.deadline - clock())
            )
            built = clock()
            model = ScopedModel(problem, scope, run.incumbent, bounds, frozen)
            run.build_seconds += clock() - built
            scope_nodes, variables = int(scope.sum()), model.variables
            proven = _lexicographic(run, model, scope)
            run.round_deadline = float("inf")
            if whole or run.remaining() < 0.1 * options.time_limit:
                break
            # Next neighbourhood: around the improved placement, twice as large.
            ranking = rank_nodes(problem, run.incumbent)
            budget *= 2
    else:
        proven = dict.fromkeys(problem.tiers, True)
    return SolveResult(
        default=default,
        placement=run.incumbent,
        proven=proven,
        stages=tuple(run.stages),
        scope_nodes=scope_nodes,
        variables=variables,
        build_seconds=run.build_seconds,
        first_improvement_seconds=run.first_improvement,
    )


def _make_room(run: _Run) -> None:
    """Start from the single-move heuristic's placement when it places more pods."""
    began = run.clock()
    moved = make_room_by_moves(
        run.problem, run.incumbent, began + HEURISTIC_SHARE * run.remaining(), run.clock
    )
    improved = int(moved.counts.sum()) > int(run.incumbent.counts.sum())
    if improved:
        run.incumbent = moved
        run.improved_yet = True
        run.first_improvement = run.clock() - run.start
    top = run.problem.tiers[0]
    run.stages.append(
        StageRecord(top, StageKind.MOVES, StageStatus.FEASIBLE, run.clock() - began, improved, 0)
    )


def frozen_groups(run: _Run) -> BoolArray:
    """Groups that can only stay exactly where they run.

    In the tiers above the first one the default placement leaves incomplete,
    every pod is placed with no move or eviction: both stages are trivially
    optimal, and fixing them forbids any of their running pods to leave. A
    group there without pending pods therefore keeps its counts on every node,
    and the model can treat it as pinned load (usually most of the cluster).
    """
    problem = run.problem
    complete: set[int] = set()
    for priority in problem.tiers:
        if not _trivially_placed(run, priority) or run.counts(priority).moves:
            break
        complete.add(priority)
    return np.array(
        [g.priority in complete and not g.pending for g in problem.groups], dtype=np.bool_
    )


def _upper_bounds(problem: PackingProblem, bounds: IntArray) -> dict[int, int]:
    upper: dict[int, int] = {}
    for group in problem.groups:
        reachable = min(group.size, int(bounds[group.index].sum()))
        upper[group.priority] = upper.get(group.priority, 0) + reachable
    return upper


def _trivially_placed(run: _Run, priority: int) -> bool:
    counts = run.counts(priority)
    pinned = run.problem.pinned_by_priority().get(priority, 0)
    return counts.evictions == 0 and counts.placed - pinned >= run.upper[priority]


def _lexicographic(run: _Run, model: ScopedModel, scope: BoolArray) -> dict[int, bool]:
    proven: dict[int, bool] = {}
    tiers = run.problem.tiers
    for position, priority in enumerate(tiers):
        terms = model.tiers[priority]
        place_proven = _place_stage(run, model, terms, tiers[position:], scope)
        disrupt_proven = _disrupt_stage(run, model, terms, tiers[position:], scope)
        proven[priority] = place_proven and disrupt_proven
    return proven


def _place_stage(
    run: _Run, model: ScopedModel, terms: Tier, rest: tuple[int, ...], scope: BoolArray
) -> bool:
    counts = run.counts(terms.priority)
    value = _placement_value(run, counts, terms)
    if _trivially_placed(run, terms.priority):
        _record(run, terms, StageKind.PLACE, StageStatus.TRIVIAL, 0.0, False, scope)
        proven = True
    else:
        model.at_least(terms.placement_objective, value)
        model.maximize(terms.placement_objective)
        status, found, seconds = _solve(run, model, _share(run, rest, PLACE_WEIGHT), value)
        improved = found is not None and found[1] > value
        if improved:
            assert found is not None
            run.incumbent, value = found
            if not run.improved_yet:
                run.improved_yet = True
                if run.first_improvement is None:
                    run.first_improvement = run.clock() - run.start
        _record(run, terms, StageKind.PLACE, status, seconds, improved, scope)
        proven = status is StageStatus.OPTIMAL and model.full_scope
    # Fix the tier: later stages may not give back what it got.
    evictions = run.counts(terms.priority).evictions
    model.at_least(terms.placement_objective, value)
    model.at_most(terms.evictions, evictions)
    return proven


def _disrupt_stage(
    run: _Run, model: ScopedModel, terms: Tier, rest: tuple[int, ...], scope: BoolArray
) -> bool:
    counts = run.counts(terms.priority)
    stays = _stays(run, terms.priority)
    if counts.moves == 0:
        _record(run, terms, StageKind.DISRUPT, StageStatus.TRIVIAL, 0.0, False, scope)
        proven = True
    else:
        model.at_least(terms.stays, stays)
        model.maximize(terms.stays)
        status, found, seconds = _solve(run, model, _share(run, rest, DISRUPT_WEIGHT), stays)
        improved = found is not None and found[1] > stays
        if improved:
            assert found is not None
            run.incumbent, stays = found
        _record(run, terms, StageKind.DISRUPT, status, seconds, improved, scope)
        proven = status is StageStatus.OPTIMAL and model.full_scope
    model.at_least(terms.stays, stays)
    return proven


def _placement_value(run: _Run, counts: TierCounts, terms: Tier) -> int:
    pinned = run.problem.pinned_by_priority().get(terms.priority, 0)
    return (counts.placed - pinned) - terms.big * counts.evictions


def _stays(run: _Run, priority: int) -> int:
    costs = group_costs(run.problem, run.incumbent)
    member = np.array([g.priority == priority for g in run.problem.groups], dtype=np.bool_)
    return int(costs.stays[member].sum())


def _share(run: _Run, rest: tuple[int, ...], weight: int) -> float:
    """This stage's slice of the remaining time: stages still to come share the rest."""
    waiting = 0
    for priority in rest:
        if not _trivially_placed(run, priority):
            waiting += PLACE_WEIGHT + DISRUPT_WEIGHT  # and probably a disrupt stage
        elif run.counts(priority).moves:
            waiting += DISRUPT_WEIGHT
    waiting = max(waiting, weight)
    return run.remaining() * weight / waiting


class _FirstSolution(cp_model.CpSolverSolutionCallback):
    """Notes when the search first beats the incumbent (time to a first improving plan)."""

    def __init__(self, clock: Clock, threshold: int) -> None:
        super().__init__()
        self._clock = clock
        self._threshold = threshold
        self.better_at: float | None = None

    def on_solution_callback(self) -> None:
        if self.better_at is None and self.objective_value > self._threshold + 0.5:
            self.better_at = self._clock()


def _solve(
    run: _Run, model: ScopedModel, budget: float, incumbent_value: int
) -> tuple[StageStatus, tuple[Placement, int] | None, float]:
    if budget < 0.005:
        return StageStatus.NOT_RUN, None, 0.0
    model.hint(run.incumbent)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = budget
    solver.parameters.num_workers = run.options.workers
    solver.parameters.random_seed = run.options.random_seed
    solver.parameters.relative_gap_limit = 0.0  # OPTIMAL must mean proven, not "close"
    if model.variables > LIGHT_PRESOLVE_ABOVE:
        # With the default presolve, presolve alone takes half a second on a
        # few thousand variables and the search often never starts.
        solver.parameters.cp_model_probing_level = 0
        solver.parameters.max_presolve_iterations = 1
        solver.parameters.presolve_inclusion_work_limit = 0
        solver.parameters.merge_at_most_one_work_limit = 0
        solver.parameters.symmetry_level = 1
    watch = _FirstSolution(run.clock, incumbent_value) if not run.improved_yet else None
    began = run.clock()
    status = solver.solve(model.model, watch)
    seconds = run.clock() - began
    if watch is not None and watch.better_at is not None and run.first_improvement is None:
        run.first_improvement = watch.better_at - run.start
    if status == cp_model.OPTIMAL:
        return StageStatus.OPTIMAL, (model.read(solver), round(solver.objective_value)), seconds
    if status == cp_model.FEASIBLE:
        return StageStatus.FEASIBLE, (model.read(solver), round(solver.objective_value)), seconds
    if status == cp_model.UNKNOWN:
        return StageStatus.UNKNOWN, None, seconds
    # The incumbent satisfies every constraint, so anything else is a modelling bug.
    raise RuntimeError(f"CP-SAT returned {solver.status_name(status)} for a feasible model")


def _record(
    run: _Run,
    terms: Tier,
    kind: StageKind,
    status: StageStatus,
    seconds: float,
    improved: bool,
    scope: BoolArray,
) -> None:
    run.stages.append(
        StageRecord(terms.priority, kind, status, seconds, improved, int(scope.sum()))
    )
