"""Prometheus metrics of the extender service, in their own registry.

Label values are bounded: verbs, outcomes and reasons are fixed enums.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler_extender.domain.filtering import Reason

PREFIX = "scheduler_extender"

# Extender calls sit on the scheduling cycle: resolve the sub-millisecond range.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


NodeGpus = Callable[[], Iterable[tuple[str, int, int]]]  # -> (node, allocatable, allocated)


class NodeGpuCollector(Collector):
    """GPUs per node, read from ``source`` (the cache) when Prometheus scrapes.

    Computed at scrape time rather than set as gauges: thousands of nodes
    would otherwise cost thousands of label updates per refresh, on the
    process that answers kube-scheduler.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.source: NodeGpus = tuple
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_node_gpus",
            "GPUs per node: allocatable and allocated (as the cache accounts them).",
            labels=["node", "state"],
        )
        for node, allocatable, allocated in self.source():
            family.add_metric([node, "allocatable"], allocatable)
            family.add_metric([node, "allocated"], allocated)
        yield family


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
        for reason in Reason:  # every series from the start, at 0: the dashboard panel has data
            self.nodes_filtered.labels(reason.value)
        self.binds = Counter(
            f"{PREFIX}_binds_total", "Bind calls, by outcome.", ["outcome"], registry=r
        )
        self.requeues = Counter(
            f"{PREFIX}_requeues_total",
            "Refused pods kube-scheduler was asked to retry once a refused node fit, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.bind_conflicts = Counter(
            f"{PREFIX}_bind_conflicts_total",
            "Binds refused because concurrent binds had taken the node's capacity.",
            registry=r,
        )
        # How each filter found the pod before it (service/inflight.py): "timeout"
        # means that pod failed after our filter, or its PreBind outlasted the wait.
        self.in_flight_waits = Histogram(
            f"{PREFIX}_in_flight_wait_seconds",
            "Time a filter waited for the previous pod's bind, by how that pod was settled.",
            ["settled"],
            buckets=(*LATENCY_BUCKETS, 5.0),
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
        # One per kind while healthy, 0 while relisting or backing off; more would be a
        # leaked watch. The soak test checks it.
        self.watch_connections = Gauge(
            f"{PREFIX}_watch_connections",
            "Watch streams open on the API server, by kind.",
            ["kind"],
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
        self.node_gpus = NodeGpuCollector(r)
