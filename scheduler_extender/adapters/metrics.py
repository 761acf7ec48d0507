"""Prometheus metrics of the extender service, in their own registry.

Label values are bounded: verbs, outcomes and reasons are fixed enums.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

PREFIX = "scheduler_extender"

# Extender calls sit on the scheduling cycle: resolve the sub-millisecond range.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # process_resident_memory_bytes, process_open_fds, python_gc_*: for leaks and soaks.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        r.register(GC_COLLECTOR)
        self.request_duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer an extender call, by verb.",
            ["verb"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions_total",
            "Extender calls answered, by verb and outcome.",
            ["verb", "outcome"],
            registry=r,
        )
        self.nodes_filtered = Counter(
            f"{PREFIX}_nodes_filtered_out_total",
            "Candidate nodes rejected by the filter, by reason.",
            ["reason"],
            registry=r,
        )
        self.binds = Counter(
            f"{PREFIX}_binds_total", "Bind calls, by outcome.", ["outcome"], registry=r
        )
        self.bind_conflicts = Counter(
            f"{PREFIX}_bind_conflicts_total",
            "Binds refused because concurrent binds had taken the node's capacity.",
            registry=r,
        )
        self.cache_objects = Gauge(
            f"{PREFIX}_cache_objects",
            "Objects in the cluster cache, by kind.",
            ["kind"],
            registry=r,
        )
        self.watch_restarts = Counter(
            f"{PREFIX}_watch_restarts_total",
            "Watches restarted, by kind and cause.",
            ["kind", "cause"],
            registry=r,
        )
        self.assumed_pods = Gauge(
            f"{PREFIX}_assumed_pods",
            "Pods bound by us that no watch event confirmed yet.",
            registry=r,
        )
        self.assumed_expired = Counter(
            f"{PREFIX}_assumed_pods_expired_total",
            "Assumed pods dropped because no watch event confirmed them in time.",
            registry=r,
        )
        self.cache_synced = Gauge(
            f"{PREFIX}_cache_synced", "1 once the cluster cache has listed everything.", registry=r
        )
        self.node_gpus = Gauge(
            f"{PREFIX}_node_gpus",
            "GPUs per node: allocatable and allocated (as the cache accounts them).",
            ["node", "state"],
            registry=r,
        )
