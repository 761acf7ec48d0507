"""One call from a cluster snapshot to a checked-ready plan, inside one time budget."""

from __future__ import annotations

import time
from collections.abc import Sequence

from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget
from scheduler_extender.domain.packing.greedy import place_greedily
from scheduler_extender.domain.packing.plan import Plan, build_plan
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.problem import build_problem
from scheduler_extender.domain.packing.solver import Clock, SolveOptions, solve


def pack(
    nodes: Sequence[Node],
    pods: Sequence[Pod],
    *,
    policy: PackingPolicy,
    options: SolveOptions,
    budgets: Sequence[DisruptionBudget] = (),
    clock: Clock = time.perf_counter,
) -> Plan:
    """Plan the placement of pending pods, moving and evicting lower-priority ones if needed.

    The time limit covers building the problem and the model as well as the
    solve. Running pods with no node in ``nodes`` are counted but never touched.
    """
    start = clock()
    problem = build_problem(nodes, pods, policy, budgets)
    result = solve(problem, options, clock, start)
    # A time-limited stage may leave room unused: fill it (this only adds pods).
    final = place_greedily(problem, result.placement)
    return build_plan(
        problem,
        result,
        final,
        time_limit=options.time_limit,
        workers=options.workers,
        wall_seconds=clock() - start,
    )
