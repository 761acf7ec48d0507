"""bench-placement's perfect-balance bound agrees with its own queue simulation."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_placement import GPUS_PER_NODE, NODES, SERVICE_RATE, balanced_p99, simulate
from benchmarks.common import percentile


def p99_of(loads: list[float]) -> float:
    """p99 of the simulated cluster whose node i runs at loads[i] (one agent per node)."""
    where = {f"a{i}": [f"n{i:02d}"] for i in range(len(loads))}
    rates = {f"a{i}": load * GPUS_PER_NODE * SERVICE_RATE for i, load in enumerate(loads)}
    return percentile(simulate(where, rates, np.random.default_rng(3)), 99)


def test_a_balanced_cluster_has_the_analytic_p99_and_any_imbalance_is_worse() -> None:
    balanced = p99_of([0.7] * NODES)
    assert abs(balanced / balanced_p99(0.7) - 1.0) < 0.1
    skewed = p99_of([0.6, 0.8] * (NODES // 2))  # the same total load
    assert skewed > balanced_p99(0.7)
