"""Prometheus metrics of the background packer, in the extender's registry.

Labels are bounded: run outcomes are the packer service's fixed set, eviction
outcomes the ``Eviction`` enum, solve statuses the ``PlanStatus`` enum.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from scheduler_extender.domain.packing.plan import PlanStatus
from scheduler_extender.domain.packing.ports import Eviction

PREFIX = "scheduler_extender_packer"
# A solve is bounded by the packer's time limit (1s by default, model building included);
# the upper buckets show limits raised for large clusters.
SOLVE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class PackerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.runs = Counter(
            f"{PREFIX}_runs",
            "Packer runs (a solve, or a tick that failed), by how they ended.",
            ["outcome"],
            registry=r,
        )
        self.solve_duration = Histogram(
            f"{PREFIX}_solve_duration_seconds",
            "Time to make a plan, model building included, by plan status "
            "(optimal: every tier proven; feasible: the best found within the limits).",
            ["status"],
            buckets=SOLVE_BUCKETS,
            registry=r,
        )
        self.pods_rescued = Counter(
            f"{PREFIX}_pods_rescued",
            "Pending pods bound to the node a packing plan reserved for them.",
            registry=r,
        )
        self.evictions = Counter(
            f"{PREFIX}_evictions",
            "Eviction API calls of packing plans, by outcome.",
            ["outcome"],
            registry=r,
        )
        # Every bounded series from zero: increase() then sees the first event of each.
        for status in PlanStatus:
            self.solve_duration.labels(status.value.lower())
        for result in Eviction:
            self.evictions.labels(result.value)

    def expect_runs(self, outcomes: Iterable[str]) -> None:
        """Start the run counters of these outcomes at zero (the service owns the set)."""
        for outcome in outcomes:
            self.runs.labels(outcome)

    def solved(self, status: PlanStatus, seconds: float) -> None:
        self.solve_duration.labels(status.value.lower()).observe(seconds)
