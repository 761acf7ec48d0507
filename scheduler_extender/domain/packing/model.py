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

from scheduler_extender.domain.packing.placement import Placement, original_counts
from scheduler_extender.domain.packing.problem import (
    UNLIMITED,
    BoolArray,
    IntArray,
    PackingProblem,
)


@dataclass(frozen=True, slots=True)
class TierTerms:
    """Linear expressions over the model for one priority tier."""

    priority: int
    placed: cp_model.LinearExprT
    evictions: cp_model.LinearExprT
    stays: cp_model.LinearExprT
    # Weight that makes "fewer evictions" dominate "more placed" in one
    # objective: more than the pods the tier can ever place.
    big: int

    @property
    def placement_objective(self) -> cp_model.LinearExprT:
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

    def expr(self) -> cp_model.LinearExprT:
        if not self.variables:
            return self.constant
        return cp_model.LinearExpr.weighted_sum(self.variables, self.coefficients) + self.constant


class ScopedModel:
    """The model for ``scope`` (a node mask), with ``incumbent`` outside it."""

    def __init__(self, problem: PackingProblem, scope: BoolArray, incumbent: Placement) -> None:
        self.problem = problem
        self.model = cp_model.CpModel()
        self.incumbent = incumbent
        self.full_scope = bool(scope.all())
        original = original_counts(problem)
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
            active = bool(group.pending) or original[g, inside].any() or counts[g, inside].any()
            x_sum, s_sum, e_sum = _Linear(), _Linear(), _Linear()
            x_sum.constant, s_sum.constant = out_placed, out_stays
            if not active:
                x_sum.constant = int(counts[g].sum())
                s_sum.constant = int(np.minimum(counts[g], original[g]).sum())
                e_sum.constant = max(0, running - x_sum.constant)
            else:
                bounds = problem.upper_bounds(group)
                for n in inside:
                    bound = int(bounds[n])
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
                reachable = sum(int(bounds[n]) for n in inside) + out_placed
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
            for n, node_vars in on_node.items():
                if problem.capacity[n, r] >= UNLIMITED:
                    continue
                room = int(problem.capacity[n, r] - problem.fixed[n, r]) // divisor
                terms = [(x, int(requests[g][r]) // divisor, b) for g, x, b in node_vars]
                terms = [t for t in terms if t[1]]
                if sum(c * b for _, c, b in terms) <= room:
                    continue  # cannot bind: every pod that may go there fits at once
                self.model.add(
                    cp_model.LinearExpr.weighted_sum([t[0] for t in terms], [t[1] for t in terms])
                    <= room
                )

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
                fixed = problem.fixed_agents[n].get(agent, 0)
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
        self.model.clear_hints()
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
