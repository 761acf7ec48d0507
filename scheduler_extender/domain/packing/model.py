"""The CP-SAT model of a packing problem, restricted to a scope of nodes.

Variables (only for the nodes in scope and groups not frozen; everything else
keeps the incumbent placement as constants):

- ``x[g, n]``: pods of group ``g`` on node ``n``, in ``[0, ub]`` where ``ub`` is
  what fits next to the settled load (the current count where the group may
  not arrive, e.g. a cordoned node it already runs on);
- ``e[g] >= running[g] - sum_n x[g, n]``: evictions, pushed down by the
  objectives; created when the group's tier is first solved;
- ``s[g, n] <= x[g, n]``, ``s[g, n] <= original[g, n]``: pods that stay.
  Maximising stays pushes ``s`` to the minimum, so moves are never
  under-counted where it matters (disruption stages and disruption budgets
  bound ``s`` from below); created for a tier when its moves are minimised,
  and at once for groups a PodDisruptionBudget covers.

Gangs (``PackingProblem.gangs``): one 0/1 variable ``y`` each, and every
member group placed exactly ``size * y``: all of the gang or none of it.

Constraints: per node and resource capacity (coefficients divided by the gcd
of the requests, so memory in bytes stays small) plus their sum per resource
(redundant, for the LP), the per-node agent limit, group sizes, and one row
per PodDisruptionBudget bounding the pods it covers that do not stay.

Rows, objectives and hints are written straight into the model proto: the
expression layer of the Python API costs ~100x more per term, which at tens of
thousands of variables is most of a one-second budget.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from scheduler_extender.domain.packing.placement import Placement
from scheduler_extender.domain.packing.problem import (
    UNLIMITED,
    BoolArray,
    IntArray,
    PackingProblem,
)

_LOWEST = cp_model.INT_MIN
_HIGHEST = cp_model.INT_MAX


@dataclass(slots=True)
class Row:
    """``sum(coefficients * variables) + constant`` over model variable indices."""

    variables: list[int] = field(default_factory=list)
    coefficients: list[int] = field(default_factory=list)
    constant: int = 0

    def add(self, other: Row, factor: int = 1) -> None:
        self.variables.extend(other.variables)
        self.coefficients.extend(c * factor for c in other.coefficients)
        self.constant += factor * other.constant

    def term(self, variable: int, coefficient: int = 1) -> None:
        self.variables.append(variable)
        self.coefficients.append(coefficient)


class Tier:
    """Rows over the model for one priority tier.

    Eviction and stay variables are created on first use, so a tier that is
    never solved costs no variables beyond its placements.
    """

    def __init__(self, model: ScopedModel, priority: int, groups: list[int], placed: Row) -> None:
        self.priority = priority
        self.placed = placed
        # More than the pods the tier can ever place: makes "fewer evictions"
        # dominate "more placed" in one objective.
        self.big = sum(model.problem.groups[g].size for g in groups) + 1
        self._model = model
        self._groups = groups
        self._evictions: Row | None = None
        self._stays: Row | None = None

    @property
    def evictions(self) -> Row:
        if self._evictions is None:
            self._evictions = self._model.evictions(self._groups)
        return self._evictions

    @property
    def stays(self) -> Row:
        if self._stays is None:
            self._stays = self._model.stays(self._groups)
        return self._stays

    @property
    def placement_objective(self) -> Row:
        row = Row()
        row.add(self.placed)
        row.add(self.evictions, -self.big)
        return row


class ScopedModel:
    """The model for ``scope`` (a node mask), with ``incumbent`` outside it.

    ``frozen`` marks groups that keep the incumbent everywhere (constants, see
    ``solver.frozen_groups``); ``bounds`` is ``scope.bounds_matrix`` next to the
    pinned and frozen load: per group and node, the most pods that fit.
    """

    def __init__(
        self,
        problem: PackingProblem,
        scope: BoolArray,
        incumbent: Placement,
        bounds: IntArray,
        frozen: BoolArray,
    ) -> None:
        self.problem = problem
        self.model = cp_model.CpModel()
        self._proto = self.model.proto
        self.incumbent = incumbent
        self.full_scope = bool(scope.all())
        original = problem.original
        counts = incumbent.counts
        inside = np.flatnonzero(scope)
        outside = ~scope
        self._running = original.sum(axis=1)
        present = original[:, inside].any(axis=1) | counts[:, inside].any(axis=1)
        pending = np.array([bool(g.pending) for g in problem.groups], dtype=np.bool_)
        self.active = ~frozen & (pending | present)

        # x variables, in bulk: (group, node, bound) for every positive bound in scope.
        sub = bounds[:, inside] * self.active[:, None]
        group_of, column = np.nonzero(sub)
        self._xg = group_of.astype(np.int64)
        self._xn = inside[column].astype(np.int64)
        self._xi = np.array([self._new(int(b)) for b in sub[group_of, column]], dtype=np.int64)

        # Per group: placed = sum of its x plus what it keeps outside the scope.
        self._placed: list[Row] = []
        self._const_stays = np.minimum(counts, original)
        for group in problem.groups:
            row = Row()
            g = group.index
            if self.active[g]:
                row.constant = int(counts[g, outside].sum())
            else:
                row.constant = int(counts[g].sum())
            self._placed.append(row)
        for g, i in zip(self._xg.tolist(), self._xi.tolist(), strict=True):
            self._placed[g].term(i)
        for group in problem.groups:
            g = group.index
            row = self._placed[g]
            reachable = int(bounds[g, inside].sum()) + row.constant
            if self.active[g] and row.variables and reachable > group.size:
                self._at_most(row, group.size)

        settled = problem.fixed + counts[frozen].T @ self._requests()[frozen]
        self._add_capacity(settled)
        # Nodes above the agent limit: (the 0/1 "replicas arrive" variable, its x and what
        # each x had there).
        self._arrivals: list[tuple[int, list[tuple[int, int]]]] = []
        self._add_agent_limits(frozen, counts)
        self._evictions: dict[int, Row] = {}
        self._stays: dict[int, Row] = {}
        self._e: list[tuple[int, int]] = []  # (group, variable)
        self._s: list[tuple[int, int, int]] = []  # (group, node, variable)
        self._add_budgets()
        self._y = [self._add_gang(gang) for gang in problem.gangs]
        self.tiers = self._tier_terms()

    @property
    def variables(self) -> int:
        return len(self._proto.variables)

    # -- low-level proto writing ----------------------------------------------
    def _new(self, upper: int, lower: int = 0) -> int:
        variable = self._proto.variables.add()
        variable.domain.extend([lower, upper])
        return len(self._proto.variables) - 1

    def _linear(self, row: Row, lower: int, upper: int, enforced: int | None = None) -> None:
        """``lower <= row <= upper``; only where the literal ``enforced`` holds, if given."""
        if not row.variables:
            return  # constant: holds by construction (the incumbent satisfies it)
        constraint = self._proto.constraints.add()
        if enforced is not None:
            constraint.enforcement_literal.append(enforced)
        linear = constraint.linear
        linear.vars.extend(row.variables)
        linear.coeffs.extend(row.coefficients)
        low = _LOWEST if lower == _LOWEST else lower - row.constant
        high = _HIGHEST if upper == _HIGHEST else upper - row.constant
        linear.domain.extend([low, high])

    def _at_most(self, row: Row, value: int, enforced: int | None = None) -> None:
        self._linear(row, _LOWEST, value, enforced)

    def at_least(self, row: Row, value: int) -> None:
        self._linear(row, value, _HIGHEST)

    def at_most(self, row: Row, value: int) -> None:
        self._at_most(row, value)

    def maximize(self, row: Row) -> None:
        # The proto minimises: negate the terms and scale the reported value by -1.
        self._proto.clear_objective()
        objective = self._proto.objective
        objective.vars.extend(row.variables)
        objective.coeffs.extend(-c for c in row.coefficients)
        objective.offset = float(-row.constant)
        objective.scaling_factor = -1.0

    def _requests(self) -> IntArray:
        return np.array([g.requests for g in self.problem.groups], dtype=np.int64).reshape(
            len(self.problem.groups), len(self.problem.resources)
        )

    # -- constraints ---------------------------------------------------------
    def _add_capacity(self, settled: IntArray) -> None:
        problem = self.problem
        requests = self._requests()
        order = np.argsort(self._xn, kind="stable")
        nodes, starts = np.unique(self._xn[order], return_index=True)
        ends = [*starts[1:].tolist(), len(order)]
        bound_of = self._bounds_of()
        for r in range(len(problem.resources)):
            need = requests[self._xg, r]
            divisor = math.gcd(*need.tolist()) if len(need) else 0
            if divisor == 0:
                continue  # nothing in scope requests this resource
            total = Row()
            total_room = 0
            rows = 0
            for n, start, end in zip(nodes.tolist(), starts.tolist(), ends, strict=True):
                if problem.capacity[n, r] >= UNLIMITED:
                    continue
                room = int(problem.capacity[n, r] - settled[n, r]) // divisor
                picked = order[start:end]
                coefficients = need[picked] // divisor
                keep = coefficients > 0
                if int((coefficients * bound_of[picked]).sum()) <= room:
                    continue  # cannot bind: every pod that may go there fits at once
                row = Row(self._xi[picked][keep].tolist(), coefficients[keep].tolist())
                self._at_most(row, room)
                total.add(row)
                total_room += room
                rows += 1
            if rows > 1:
                # Redundant, for the LP: presolve turns small per-node rows into
                # clauses, and without the aggregate a worker with the basic
                # linearisation cannot bound the tier (proofs that take seconds
                # then take milliseconds).
                self._at_most(total, total_room)

    def _bounds_of(self) -> IntArray:
        domains = self._proto.variables
        return np.array([domains[int(i)].domain[1] for i in self._xi], dtype=np.int64)

    def _add_agent_limits(self, frozen: BoolArray, counts: IntArray) -> None:
        problem = self.problem
        limit = problem.max_agent_replicas_per_node
        if not limit:
            return
        agents = [g.agent for g in problem.groups]
        settled: dict[tuple[int, str], int] = defaultdict(int)
        before: dict[tuple[int, str], int] = defaultdict(int)
        for n, pinned in enumerate(problem.fixed_agents):
            for agent, count in pinned.items():
                settled[(n, agent)] += count
                before[(n, agent)] += count
        arrived: set[tuple[int, str]] = set()  # a frozen group has newly arrived there
        for group in problem.groups:
            if group.agent is None:
                continue
            somewhere = counts[group.index] | problem.original[group.index]
            for at in np.flatnonzero(somewhere).tolist():
                was = int(problem.original[group.index, at])
                if frozen[group.index]:
                    settled[(at, group.agent)] += int(counts[group.index, at])
                    if counts[group.index, at] > was:
                        arrived.add((at, group.agent))
                before[(at, group.agent)] += was
        rows: dict[tuple[int, str], Row] = defaultdict(Row)
        most: dict[tuple[int, str], int] = defaultdict(int)
        kept: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
        bound_of = self._bounds_of()
        original = problem.original
        for g, n, i, b in zip(
            self._xg.tolist(), self._xn.tolist(), self._xi.tolist(), bound_of.tolist(), strict=True
        ):
            name = agents[g]
            if name is not None:
                rows[(n, name)].term(i)
                most[(n, name)] += b
                kept[(n, name)].append((i, int(original[g, n])))
        for key, row in rows.items():
            if before[key] <= limit or key in arrived:
                if settled[key] + most[key] > limit:
                    self._at_most(row, limit - settled[key])
                continue
            # Above the limit already: the node may keep its replicas (no group gains
            # any there) or take new ones once the plan brings it down to the limit.
            arrive = self._new(1)
            self._at_most(row, limit - settled[key], enforced=arrive)
            for variable, was in kept[key]:
                self._at_most(Row([variable], [1]), was, enforced=-arrive - 1)
            self._arrivals.append((arrive, kept[key]))

    def _add_budgets(self) -> None:
        covered: dict[int, list[int]] = defaultdict(list)
        for group in self.problem.groups:
            for b in group.budgets:
                covered[b].append(group.index)
        for b, groups in covered.items():
            allowed = self.problem.budgets[b].disruptions_allowed
            running = sum(int(self._running[g]) for g in groups)
            if running <= allowed:
                continue
            kept = Row()
            for g in groups:
                kept.add(self._group_stays(g))
            # pods covered that do not stay (moved or evicted) <= disruptionsAllowed
            self.at_least(kept, running - allowed)

    def _add_gang(self, gang: tuple[int, ...]) -> int:
        whole = self._new(1)
        for g in gang:
            row = Row()
            row.add(self._placed[g])
            row.term(whole, -self.problem.groups[g].size)
            self._linear(row, 0, 0)
        return whole

    # -- lazily created rows ---------------------------------------------------
    def _group_stays(self, g: int) -> Row:
        row = self._stays.get(g)
        if row is None:
            row = Row()
            original = self.problem.original[g]
            in_model: set[int] = set()
            for n, x in zip(
                self._xn[self._xg == g].tolist(), self._xi[self._xg == g].tolist(), strict=True
            ):
                was = int(original[n])
                if was:
                    s = self._new(was)
                    self._linear(Row([s, x], [1, -1]), _LOWEST, 0)
                    self._s.append((g, n, s))
                    row.term(s)
                    in_model.add(n)
            row.constant = int(
                sum(
                    int(self._const_stays[g, n])
                    for n in np.flatnonzero(original)
                    if n not in in_model
                )
            )
            self._stays[g] = row
        return row

    def _group_evictions(self, g: int) -> Row:
        row = self._evictions.get(g)
        if row is None:
            row = Row()
            running = int(self._running[g])
            placed = self._placed[g]
            if running and placed.variables:
                e = self._new(running)
                self._e.append((g, e))
                floor = Row()
                floor.add(placed)
                floor.term(e)
                self.at_least(floor, running)  # e >= running - placed
                row.term(e)
            else:
                row.constant = max(0, running - placed.constant)
            self._evictions[g] = row
        return row

    def _tier_terms(self) -> dict[int, Tier]:
        members: dict[int, list[int]] = defaultdict(list)
        for group in self.problem.groups:
            members[group.priority].append(group.index)
        terms: dict[int, Tier] = {}
        for priority, groups in members.items():
            placed = Row()
            for g in groups:
                placed.add(self._placed[g])
            terms[priority] = Tier(self, priority, groups, placed)
        return terms

    def evictions(self, groups: Sequence[int]) -> Row:
        row = Row()
        for g in groups:
            row.add(self._group_evictions(g))
        return row

    def stays(self, groups: Sequence[int]) -> Row:
        row = Row()
        for g in groups:
            row.add(self._group_stays(g))
        return row

    # -- hints and solutions -------------------------------------------------
    def hint(self, placement: Placement) -> None:
        """Hint every variable with ``placement`` (a complete, feasible hint)."""
        counts = placement.counts
        original = self.problem.original
        variables = self._xi.tolist()
        values = counts[self._xg, self._xn].tolist()
        for g, n, s in self._s:
            variables.append(s)
            values.append(int(min(counts[g, n], original[g, n])))
        for g, e in self._e:
            variables.append(e)
            values.append(max(0, int(self._running[g] - counts[g].sum())))
        for gang, y in zip(self.problem.gangs, self._y, strict=True):
            variables.append(y)
            values.append(int(counts[gang[0]].sum() > 0))
        hinted = dict(zip(variables, values, strict=True))
        for arrive, kept in self._arrivals:
            variables.append(arrive)
            values.append(int(any(hinted[x] > was for x, was in kept)))
        self._proto.clear_solution_hint()
        hint = self._proto.solution_hint
        hint.vars.extend(variables)
        hint.values.extend(values)

    def read(self, solver: cp_model.CpSolver) -> Placement:
        solution = np.asarray(solver.response_proto.solution, dtype=np.int64)
        counts = self.incumbent.counts.copy()
        counts[self._xg, self._xn] = solution[self._xi]
        return Placement(counts)
