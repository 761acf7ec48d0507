"""The CP-SAT model of a packing problem, restricted to a scope of nodes.

Variables (only for the nodes in scope; every other node keeps the incumbent
placement as constants):

- ``x[g, n]``: pods of group ``g`` on node ``n``, in ``[0, ub]`` where ``ub`` is
  what fits next to the pinned load (the current count where the group may
  not arrive, e.g. a cordoned node it already runs on);
- ``s[g, n] <= min(x[g, n], original[g, n])``: pods that stay. Maximising stays
  pushes ``s`` to the minimum, so moves are never under-counted where it
  matters (disruption stages and disruption budgets bound ``s`` from below);
- ``e[g] >= running[g] - sum_n x[g, n]``: evictions, pushed down by the
  objectives.

Constraints: per node and resource capacity (coefficients divided by the gcd
of the requests, so memory in bytes stays small), the per-node agent limit,
group sizes, and one row per PodDisruptionBudget bounding the pods it covers
that do not stay.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from scheduler_extender.domain.packing.placement import Placement
from scheduler_extender.domain.packing.problem import (
    UNLIMITED,
    BoolArray,
    IntArray,
    PackingProblem,
)

Expr = cp_model.LinearExpr | int


@dataclass(frozen=True, slots=True)
class TierTerms:
    """Linear expressions over the model for one priority tier."""

    priority: int
    placed: Expr
    evictions: Expr
    stays: Expr
    # Weight that makes "fewer evictions" dominate "more placed" in one
    # objective: more than the pods the tier can ever place.
    big: int

    @property
    def placement_objective(self) -> Expr:
        return self.placed - self.big * self.evictions


class _Linear:
    """Accumulates ``sum(coef * var) + constant`` without building nested expressions."""

    def __init__(self) -> None:
        self.variables: list[cp_model.IntVar] = []
        self.coefficients: list[int] = []
        self.constant = 0

    def add(self, other: _Linear, factor: int = 1) -> None:
        self.variables.extend(other.variables)
        self.coefficients.extend(c * factor for c in other.coefficients)
        self.constant += factor * other.constant

    def expr(self) -> Expr:
        if not self.variables:
            return self.constant
        return cp_model.LinearExpr.weighted_sum(self.variables, self.coefficients) + self.constant


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
        self.incumbent = incumbent
        self.full_scope = bool(scope.all())
        original = problem.original
        self._original = original
        counts = incumbent.counts
        inside = np.flatnonzero(scope)
        outside = ~scope
        model = self.model
        self._x: list[tuple[int, int, cp_model.IntVar]] = []
        self._s: list[tuple[int, int, cp_model.IntVar]] = []
        self._e: list[tuple[int, cp_model.IntVar]] = []
        # per node: (group, var) for the capacity and agent rows
        on_node: dict[int, list[tuple[int, cp_model.IntVar, int]]] = defaultdict(list)
        placed: list[_Linear] = []
        stays: list[_Linear] = []
        evictions: list[_Linear] = []
        for group in problem.groups:
            g = group.index
            running = int(original[g].sum())
            out_placed = int(counts[g, outside].sum())
            out_stays = int(np.minimum(counts[g, outside], original[g, outside]).sum())
            active = not frozen[g] and (
                bool(group.pending) or original[g, inside].any() or counts[g, inside].any()
            )
            x_sum, s_sum, e_sum = _Linear(), _Linear(), _Linear()
            x_sum.constant, s_sum.constant = out_placed, out_stays
            if not active:
                x_sum.constant = int(counts[g].sum())
                s_sum.constant = int(np.minimum(counts[g], original[g]).sum())
                e_sum.constant = max(0, running - x_sum.constant)
            else:
                for n in inside:
                    bound = int(bounds[g, n])
                    if bound <= 0:
                        continue
                    x = model.new_int_var(0, bound, "")
                    self._x.append((g, int(n), x))
                    on_node[int(n)].append((g, x, bound))
                    x_sum.variables.append(x)
                    x_sum.coefficients.append(1)
                    was = int(original[g, n])
                    if was:
                        s = model.new_int_var(0, was, "")
                        model.add(s <= x)
                        self._s.append((g, int(n), s))
                        s_sum.variables.append(s)
                        s_sum.coefficients.append(1)
                reachable = int(bounds[g, inside].sum()) + out_placed
                if x_sum.variables and reachable > group.size:
                    model.add(x_sum.expr() <= group.size)
                if running:
                    e = model.new_int_var(0, running, "")
                    model.add(e + x_sum.expr() >= running)
                    self._e.append((g, e))
                    e_sum.variables.append(e)
                    e_sum.coefficients.append(1)
            placed.append(x_sum)
            stays.append(s_sum)
            evictions.append(e_sum)
        # Pinned pods and frozen groups: load no variable can change.
        requests = np.array([g.requests for g in problem.groups], dtype=np.int64).reshape(
            len(problem.groups), len(problem.resources)
        )
        self._settled = problem.fixed + counts[frozen].T @ requests[frozen]
        self._settled_agents = [dict(a) for a in problem.fixed_agents]
        for group in problem.groups:
            if frozen[group.index] and group.agent is not None:
                for n in np.flatnonzero(counts[group.index]):
                    agents = self._settled_agents[n]
                    agents[group.agent] = agents.get(group.agent, 0) + int(counts[group.index, n])
        self._add_capacity(on_node)
        self._add_agent_limits(on_node, original)
        self._add_budgets(stays, original)
        self.tiers = self._tier_terms(placed, stays, evictions)
        self.variables = len(self._x) + len(self._s) + len(self._e)

    # -- constraints ---------------------------------------------------------
    def _add_capacity(self, on_node: dict[int, list[tuple[int, cp_model.IntVar, int]]]) -> None:
        problem = self.problem
        requests = [g.requests for g in problem.groups]
        for r, _name in enumerate(problem.resources):
            divisor = 0
            for node_vars in on_node.values():
                for g, _, _ in node_vars:
                    divisor = math.gcd(divisor, int(requests[g][r]))
            if divisor == 0:
                continue  # nothing in scope requests this resource
            total = _Linear()
            total_room = 0
            rows = 0
            for n, node_vars in on_node.items():
                if problem.capacity[n, r] >= UNLIMITED:
                    continue
                room = int(problem.capacity[n, r] - self._settled[n, r]) // divisor
                row = _Linear()
                for g, x, bound in node_vars:
                    if coefficient := int(requests[g][r]) // divisor:
                        row.variables.append(x)
                        row.coefficients.append(coefficient)
                        row.constant += coefficient * bound  # what the row needs at most
                if row.constant <= room:
                    continue  # cannot bind: every pod that may go there fits at once
                row.constant = 0
                self.model.add(row.expr() <= room)
                total.add(row)
                total_room += room
                rows += 1
            if rows > 1:
                # Redundant, for the LP: presolve turns small per-node rows into
                # clauses, and without the aggregate no worker with a basic
                # linearisation can bound the tier (a proof that needs seconds
                # then needs milliseconds).
                self.model.add(total.expr() <= total_room)

    def _add_agent_limits(
        self, on_node: dict[int, list[tuple[int, cp_model.IntVar, int]]], original: IntArray
    ) -> None:
        problem = self.problem
        limit = problem.max_agent_replicas_per_node
        if not limit:
            return
        for n, node_vars in on_node.items():
            by_agent: dict[str, list[tuple[int, cp_model.IntVar, int]]] = defaultdict(list)
            for item in node_vars:
                agent = problem.groups[item[0]].agent
                if agent is not None:
                    by_agent[agent].append(item)
            for agent, items in by_agent.items():
                fixed = self._settled_agents[n].get(agent, 0)
                before = fixed + sum(int(original[g, n]) for g, _, _ in items)
                if before > limit:
                    continue  # no arrivals allowed there (see build_problem): the bounds hold it
                if fixed + sum(b for _, _, b in items) <= limit:
                    continue
                self.model.add(sum(x for _, x, _ in items) <= limit - fixed)

    def _add_budgets(self, stays: Sequence[_Linear], original: IntArray) -> None:
        covered: dict[int, list[int]] = defaultdict(list)
        for group in self.problem.groups:
            for b in group.budgets:
                covered[b].append(group.index)
        for b, groups in covered.items():
            allowed = self.problem.budgets[b].disruptions_allowed
            running = sum(int(original[g].sum()) for g in groups)
            if running <= allowed:
                continue
            kept = _Linear()
            for g in groups:
                kept.add(stays[g])
            # pods covered that do not stay (moved or evicted) <= disruptionsAllowed
            self.model.add(kept.expr() >= running - allowed)

    def _tier_terms(
        self, placed: Sequence[_Linear], stays: Sequence[_Linear], evictions: Sequence[_Linear]
    ) -> dict[int, TierTerms]:
        members: dict[int, list[int]] = defaultdict(list)
        for group in self.problem.groups:
            members[group.priority].append(group.index)
        terms: dict[int, TierTerms] = {}
        for priority, groups in members.items():
            tier_placed, tier_stays, tier_evictions = _Linear(), _Linear(), _Linear()
            for g in groups:
                tier_placed.add(placed[g])
                tier_stays.add(stays[g])
                tier_evictions.add(evictions[g])
            terms[priority] = TierTerms(
                priority=priority,
                placed=tier_placed.expr(),
                evictions=tier_evictions.expr(),
                stays=tier_stays.expr(),
                big=sum(self.problem.groups[g].size for g in groups) + 1,
            )
        return terms

    # -- hints and solutions -------------------------------------------------
    def hint(self, placement: Placement) -> None:
        """Hint every variable with ``placement`` (a complete, feasible hint)."""
        self.model.clear_hints()  # type: ignore[no-untyped-call]  # untyped in ortools 9.15
        counts = placement.counts
        original = self._original
        for g, n, x in self._x:
            self.model.add_hint(x, int(counts[g, n]))
        for g, n, s in self._s:
            self.model.add_hint(s, int(min(counts[g, n], original[g, n])))
        for g, e in self._e:
            self.model.add_hint(e, max(0, int(original[g].sum() - counts[g].sum())))

    def read(self, solver: cp_model.CpSolver) -> Placement:
        counts = self.incumbent.counts.copy()
        for g, n, x in self._x:
            counts[g, n] = solver.value(x)
        return Placement(counts)
