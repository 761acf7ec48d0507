"""The background packer: trigger, re-check, dry run, reservations, evictions, aborts, metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from scheduler_extender.adapters.packer.metrics import PackerMetrics
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget, LabelSelector
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.ports import Eviction
from scheduler_extender.domain.packing.reservations import EMPTY_BOOK, ReservationBook
from scheduler_extender.domain.packing.solver import SolveOptions
from scheduler_extender.service.packer import Outcome, Packer, PackerConfig
from tests.unit.domain.packing.scenarios import node, pod

SCHEDULER = "default-scheduler"


@dataclass
class FakeCluster:
    nodes: list[Node]
    pods: list[Pod]
    synced: bool = True
    book: ReservationBook = EMPTY_BOOK
    # Objects returned by the next objects() calls instead of the current ones.
    changes: list[list[Pod]] = field(default_factory=list)

    def objects(self) -> tuple[Sequence[Node], Sequence[Pod]]:
        if self.changes:
            self.pods = self.changes.pop(0)
        return self.nodes, list(self.pods)

    def set_reservations(self, book: ReservationBook) -> None:
        self.book = book


@dataclass
class FakeApi:
    stuck: set[str] = field(default_factory=set)
    budgets: list[DisruptionBudget] = field(default_factory=list)
    results: list[Eviction] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    events: list[tuple[str, str, bool]] = field(default_factory=list)
    failure: Exception | None = None  # raised by the next unschedulable() call

    def unschedulable(self, scheduler_name: str) -> set[str]:
        assert scheduler_name == SCHEDULER
        if self.failure is not None:
            raise self.failure
        return set(self.stuck)

    def disruption_budgets(self) -> Sequence[DisruptionBudget]:
        return self.budgets

    def evict(self, target: Pod) -> Eviction:
        self.evicted.append(target.name)
        return self.results.pop(0) if self.results else Eviction.EVICTED

    def event(self, target: Pod, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append((target.name, reason, warning))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fragmented() -> FakeCluster:
    return FakeCluster(
        nodes=[node("a", gpu=8, cpu=16), node("b", gpu=8, cpu=16)],
        pods=[
            pod("low-1", gpu=4, on="a", owner="low"),
            pod("low-2", gpu=4, on="b", owner="low"),
            pod("trainer", gpu=8, priority=100, owner="trainer"),
        ],
    )


def packer(
    cluster: FakeCluster,
    api: FakeApi,
    clock: Clock,
    *,
    dry_run: bool = False,
    registry: CollectorRegistry | None = None,
) -> tuple[Packer, list[float]]:
    waits: list[float] = []
    config = PackerConfig(
        scheduler_name=SCHEDULER,
        policy=PackingPolicy(scheduler_names=frozenset({SCHEDULER})),
        options=SolveOptions(time_limit=2.0, workers=1),
        debounce=5.0,
        min_interval=30.0,
        min_improvement=1,
        dry_run=dry_run,
        reservation_ttl=120.0,
        eviction_interval=6.0,
    )

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    metrics = PackerMetrics(registry or CollectorRegistry())
    return Packer(cluster, api, config, metrics, clock=clock, wait=wait), waits


def ready(clock: Clock, p: Packer) -> Outcome:
    """First sighting, then the debounce."""
    assert p.tick() is Outcome.WAITING
    clock.now += 5.0
    return p.tick()


def test_nothing_unschedulable_means_nothing_to_do() -> None:
    p, _ = packer(fragmented(), FakeApi(), Clock())
    assert p.tick() is Outcome.IDLE


def test_a_partial_cache_is_never_planned_on() -> None:
    cluster = fragmented()
    cluster.synced = False
    p, _ = packer(cluster, FakeApi(stuck={"uid-trainer"}), Clock())
    assert p.tick() is Outcome.WAITING
    assert p.last_plan is None


def test_dry_run_records_events_and_changes_nothing() -> None:
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock, dry_run=True)
    assert ready(clock, p) is Outcome.DRY_RUN
    assert api.evicted == []
    assert cluster.book == EMPTY_BOOK
    assert p.last_plan is not None
    moved = next(a.pod.name for a in p.last_plan.actions if a.kind == "move")
    assert {(name, reason) for name, reason, _ in api.events} == {
        ("trainer", "PackingDryRun"),
        (moved, "PackingDryRun"),
    }
    # The same plan again later: no duplicate Events.
    clock.now += 30.0
    assert p.tick() is Outcome.DRY_RUN
    assert len(api.events) == 2


def test_a_plan_reserves_evicts_and_releases_once_pods_arrive() -> None:
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock)
    assert ready(clock, p) is Outcome.EXECUTED
    assert p.last_plan is not None
    move = next(a for a in p.last_plan.actions if a.kind == "move")
    place = next(a for a in p.last_plan.actions if a.kind == "place")
    assert api.evicted == [move.pod.name]
    reserved = {(r.node, r.pod_uid or r.owner_uid, r.slots) for r in cluster.book.reservations}
    assert reserved == {(place.node, "uid-trainer", 1), (move.node, "uid-low", 1)}
    assert p.tick() is Outcome.PLAN_ACTIVE
    # The evicted pod's replacement lands on its target; the trainer is bound.
    replacement = dataclasses.replace(move.pod, name="low-3", uid="uid-low-3", node_name=move.node)
    trainer = dataclasses.replace(place.pod, node_name=place.node, phase="Running")
    kept = [q for q in cluster.pods if q.name not in (move.pod.name, "trainer")]
    cluster.pods = [*kept, replacement, trainer]
    api.stuck = set()
    assert p.tick() is Outcome.IDLE
    assert cluster.book == EMPTY_BOOK


def test_reservations_expire() -> None:
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock)
    assert ready(clock, p) is Outcome.EXECUTED
    clock.now += 121.0
    api.stuck = set()
    assert p.tick() is Outcome.IDLE
    assert cluster.book == EMPTY_BOOK


def test_a_refused_eviction_aborts_releases_and_replans() -> None:
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    api.results = [Eviction.THROTTLED]
    p, _ = packer(cluster, api, clock)
    assert ready(clock, p) is Outcome.ABORTED
    assert cluster.book == EMPTY_BOOK
    assert ("PackingAborted", True) in {(reason, warning) for _, reason, warning in api.events}
    # No 30 s wait: the next tick plans again.
    assert p.tick() is Outcome.EXECUTED


def test_evictions_are_spaced_by_the_rate_limit() -> None:
    cluster = FakeCluster(
        nodes=[node("a", cpu=4), node("b", cpu=4)],
        pods=[
            pod("x-1", cpu=2, on="a", owner="x"),
            pod("y-1", cpu=2, on="b", owner="y"),
            pod("big-1", cpu=4, priority=10, owner="big"),
            pod("big-2", cpu=4, priority=10, owner="big"),
        ],
    )
    api, clock = FakeApi(stuck={"uid-big-1"}), Clock()
    p, waits = packer(cluster, api, clock)
    assert ready(clock, p) is Outcome.EXECUTED
    assert sorted(api.evicted) == ["x-1", "y-1"]
    assert waits == [6.0]


def test_a_plan_is_dropped_when_the_cluster_changed_under_it() -> None:
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock)
    assert p.tick() is Outcome.WAITING
    clock.now += 5.0
    # Between the solve and the re-check, both low pods were deleted.
    trainer = cluster.pods[2]
    cluster.changes = [list(cluster.pods), [trainer]]
    assert p.tick() is Outcome.STALE
    assert api.evicted == []


@pytest.mark.parametrize("owner", [None, "low"])
def test_bare_or_budget_protected_pods_are_never_evicted(owner: str | None) -> None:
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    cluster.pods = [
        dataclasses.replace(q, owner=None) if owner is None and q.name.startswith("low") else q
        for q in cluster.pods
    ]
    if owner is not None:
        api.budgets = [DisruptionBudget("default", "low", LabelSelector({"app": "low"}), 0)]
    p, _ = packer(cluster, api, clock)
    assert ready(clock, p) is Outcome.NO_IMPROVEMENT
    assert api.evicted == []


class Samples:
    """Reads the packer's series from the registry the packer was given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def __call__(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(f"scheduler_extender_packer_{name}", labels)
        assert value is not None, f"no series {name} {labels}"
        return value

    def runs(self) -> dict[str, float]:
        (family,) = [f for f in self.registry.collect() if f.name.endswith("packer_runs")]
        return {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}


def test_every_outcome_series_starts_at_zero() -> None:
    registry = CollectorRegistry()
    packer(fragmented(), FakeApi(), Clock(), registry=registry)
    samples = Samples(registry)
    assert samples.runs() == dict.fromkeys(
        ["no_improvement", "stale", "dry_run", "executed", "aborted", "error"], 0.0
    )
    for outcome in Eviction:
        assert samples("evictions_total", outcome=outcome.value) == 0.0
    assert samples("pods_rescued_total") == 0.0
    assert samples("solve_duration_seconds_count", status="optimal") == 0.0


def test_idle_and_waiting_ticks_are_not_runs() -> None:
    registry = CollectorRegistry()
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock, registry=registry)
    assert p.tick() is Outcome.WAITING
    api.stuck = set()
    assert p.tick() is Outcome.IDLE
    assert set(Samples(registry).runs().values()) == {0.0}


def test_an_executed_run_counts_its_solve_evictions_and_rescued_pods() -> None:
    registry = CollectorRegistry()
    samples = Samples(registry)
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock, registry=registry)
    assert ready(clock, p) is Outcome.EXECUTED
    assert p.last_plan is not None
    status = p.last_plan.status.value.lower()
    assert samples.runs()["executed"] == 1.0
    assert samples("solve_duration_seconds_count", status=status) == 1.0
    assert samples("solve_duration_seconds_sum", status=status) == pytest.approx(
        p.last_plan.stats.wall_seconds
    )
    assert samples("evictions_total", outcome="evicted") == 1.0
    # Nothing has arrived yet: no pod rescued, and a plan in progress is no new run.
    assert p.tick() is Outcome.PLAN_ACTIVE
    assert samples("pods_rescued_total") == 0.0
    assert sum(samples.runs().values()) == 1.0
    place = next(a for a in p.last_plan.actions if a.kind == "place")
    trainer = dataclasses.replace(place.pod, node_name=place.node, phase="Running")
    cluster.pods = [q for q in cluster.pods if q.name != "trainer"] + [trainer]
    p.tick()
    p.tick()
    assert samples("pods_rescued_total") == 1.0  # counted once, however often it is seen


def test_a_pod_bound_elsewhere_than_its_reservation_is_not_rescued() -> None:
    registry = CollectorRegistry()
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock, registry=registry)
    assert ready(clock, p) is Outcome.EXECUTED
    assert p.last_plan is not None
    place = next(a for a in p.last_plan.actions if a.kind == "place")
    elsewhere = next(n.name for n in cluster.nodes if n.name != place.node)
    trainer = dataclasses.replace(place.pod, node_name=elsewhere, phase="Running")
    cluster.pods = [q for q in cluster.pods if q.name != "trainer"] + [trainer]
    p.tick()
    assert Samples(registry)("pods_rescued_total") == 0.0


def test_a_dry_run_evicts_and_rescues_nothing() -> None:
    registry = CollectorRegistry()
    samples = Samples(registry)
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock, dry_run=True, registry=registry)
    assert ready(clock, p) is Outcome.DRY_RUN
    clock.now += 30.0
    assert p.tick() is Outcome.DRY_RUN
    assert samples.runs()["dry_run"] == 2.0
    assert sum(samples("evictions_total", outcome=o.value) for o in Eviction) == 0.0
    assert samples("pods_rescued_total") == 0.0


def test_a_refused_eviction_counts_as_an_aborted_run() -> None:
    registry = CollectorRegistry()
    samples = Samples(registry)
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    api.results = [Eviction.THROTTLED]
    p, _ = packer(cluster, api, clock, registry=registry)
    assert ready(clock, p) is Outcome.ABORTED
    assert samples.runs()["aborted"] == 1.0
    assert samples("evictions_total", outcome="throttled") == 1.0
    assert samples("evictions_total", outcome="evicted") == 0.0


def test_a_failing_tick_counts_as_an_error_run_and_still_raises() -> None:
    registry = CollectorRegistry()
    api = FakeApi(stuck={"uid-trainer"}, failure=RuntimeError("API server unreachable"))
    p, _ = packer(fragmented(), api, Clock(), registry=registry)
    with pytest.raises(RuntimeError, match="unreachable"):
        p.tick()
    assert Samples(registry).runs()["error"] == 1.0


def test_no_improvement_and_stale_runs_are_counted() -> None:
    registry = CollectorRegistry()
    samples = Samples(registry)
    cluster, api, clock = fragmented(), FakeApi(stuck={"uid-trainer"}), Clock()
    p, _ = packer(cluster, api, clock, registry=registry)
    assert p.tick() is Outcome.WAITING
    clock.now += 5.0
    trainer = cluster.pods[2]
    cluster.changes = [list(cluster.pods), [trainer]]
    assert p.tick() is Outcome.STALE
    assert samples.runs()["stale"] == 1.0
    # Both low pods are gone now: the trainer fits without moves, but so it does by default.
    clock.now += 30.0
    assert p.tick() is Outcome.NO_IMPROVEMENT
    assert samples.runs()["no_improvement"] == 1.0
