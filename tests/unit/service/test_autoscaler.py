"""The AgentAutoscaler controller's passes, with in-memory fakes for the cluster and forecast."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from scheduler_extender.adapters.autoscaler.metrics import AutoscalerMetrics
from scheduler_extender.domain.autoscaling.conditions import ConditionType
from scheduler_extender.domain.autoscaling.objects import (
    Autoscaler,
    AutoscalerStatus,
    Scale,
    TargetRef,
)
from scheduler_extender.domain.autoscaling.outlook import (
    ForecastState,
    LoadOutlook,
    OutlookRequest,
)
from scheduler_extender.domain.autoscaling.policy import Mode, ScalingPolicy
from scheduler_extender.domain.autoscaling.ports import TargetError
from scheduler_extender.service.autoscaler import AutoscalerController, BudgetConfig
from tests.unit.conftest import FakeClock

SYNC = 15.0


@dataclass
class FakeStore:
    objects: dict[str, Autoscaler] = field(default_factory=dict)
    writes: int = 0

    def add(self, autoscaler: Autoscaler) -> None:
        self.objects[autoscaler.uid] = autoscaler

    def list_autoscalers(self) -> Sequence[Autoscaler]:
        return list(self.objects.values())

    def update_status(self, autoscaler: Autoscaler, status: AutoscalerStatus) -> None:
        self.writes += 1
        if autoscaler.uid in self.objects:
            self.objects[autoscaler.uid] = dataclasses.replace(autoscaler, status=status)

    def status(self, uid: str) -> AutoscalerStatus:
        return self.objects[uid].status


@dataclass
class FakeScales:
    scales: dict[str, int] = field(default_factory=dict)  # "ns/Kind/name" -> replicas
    gpus: dict[str, int] = field(default_factory=dict)
    writes: list[tuple[str, int]] = field(default_factory=list)
    fail_writes: bool = False

    @staticmethod
    def key(namespace: str, target: TargetRef) -> str:
        return f"{namespace}/{target.kind}/{target.name}"

    def get_scale(self, namespace: str, target: TargetRef) -> Scale:
        key = self.key(namespace, target)
        if key not in self.scales:
            raise TargetError(f"{target} not found in {namespace}", "FailedGetScale")
        return Scale(self.scales[key], self.scales[key])

    def set_replicas(self, namespace: str, target: TargetRef, replicas: int) -> None:
        if self.fail_writes:
            raise RuntimeError("conflict")
        key = self.key(namespace, target)
        self.writes.append((key, replicas))
        self.scales[key] = replicas

    def gpus_per_replica(self, namespace: str, target: TargetRef) -> int:
        return self.gpus.get(self.key(namespace, target), 1)


@dataclass
class FakeConflicts:
    hpas: dict[str, str] = field(default_factory=dict)

    def autoscaler_of(self, namespace: str, target: TargetRef) -> str | None:
        return self.hpas.get(FakeScales.key(namespace, target))


@dataclass
class FakeEvents:
    events: list[tuple[str, bool, str, str]] = field(default_factory=list)

    def record(self, autoscaler: Autoscaler, *, warning: bool, reason: str, message: str) -> None:
        self.events.append((autoscaler.key, warning, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, _, reason, _ in self.events]


@dataclass
class FakeForecaster:
    outlook: dict[str, LoadOutlook] = field(default_factory=dict)
    error: Exception | None = None
    asked: list[set[OutlookRequest]] = field(default_factory=list)

    def outlooks(
        self, requests: Collection[OutlookRequest], now: float
    ) -> Mapping[OutlookRequest, LoadOutlook]:
        self.asked.append(set(requests))
        if self.error is not None:
            raise self.error
        return {
            r: self.outlook.get(r.agent, LoadOutlook(ForecastState.NO_HISTORY)) for r in requests
        }


def ready(rate: float, observed: float | None = None) -> LoadOutlook:
    return LoadOutlook(
        ForecastState.READY,
        observed=rate if observed is None else observed,
        point_peak=rate,
        quantile_peak=rate,
        generated_at=1000.0,
    )


def autoscaler(
    name: str, *, namespace: str = "ml", mode: Mode = Mode.AUTO, target: str | None = None,
    max_replicas: int = 20, window: float = 300.0,
) -> Autoscaler:  # fmt: skip
    policy = ScalingPolicy(
        min_replicas=1,
        max_replicas=max_replicas,
        target_per_replica=10.0,
        stabilization_window=window,
        mode=mode,
    )
    return Autoscaler(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        generation=1,
        target=TargetRef("apps/v1", "Deployment", target or name),
        agent=name,
        policy=policy,
    )


@dataclass
class World:
    store: FakeStore = field(default_factory=FakeStore)
    scales: FakeScales = field(default_factory=FakeScales)
    conflicts: FakeConflicts = field(default_factory=FakeConflicts)
    events: FakeEvents = field(default_factory=FakeEvents)
    forecaster: FakeForecaster = field(default_factory=FakeForecaster)
    metrics: AutoscalerMetrics = field(default_factory=AutoscalerMetrics)
    clock: FakeClock = field(default_factory=lambda: FakeClock(1_700_000_000.0))
    leader: bool = True
    budgets: BudgetConfig | None = None
    controller: AutoscalerController = field(init=False)

    def __post_init__(self) -> None:
        self.controller = AutoscalerController(
            store=self.store,
            scales=self.scales,
            conflicts=self.conflicts,
            events=self.events,
            forecaster=self.forecaster,
            metrics=self.metrics,
            budgets=self.budgets,
            clock=self.clock,
            may_act=lambda: self.leader,
        )

    def add(self, a: Autoscaler, replicas: int, outlook: LoadOutlook | None = None) -> str:
        self.store.add(a)
        self.scales.scales[FakeScales.key(a.namespace, a.target)] = replicas
        if outlook is not None:
            self.forecaster.outlook[a.agent] = outlook
        return a.uid

    def replicas(self, name: str, namespace: str = "ml") -> int:
        return self.scales.scales[f"{namespace}/Deployment/{name}"]

    def passes(self, seconds: float) -> None:
        for _ in range(int(seconds // SYNC)):
            self.clock.now += SYNC
            self.controller.reconcile()

    def condition(self, uid: str, kind: ConditionType) -> tuple[bool, str]:
        found = self.store.status(uid).condition(kind)
        assert found is not None, kind
        return found.condition.status, found.condition.reason

    def sample(self, name: str, labels: dict[str, str]) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def test_scale_up_writes_scale_event_and_status() -> None:
    world = World()
    uid = world.add(autoscaler("llama"), 2, ready(55.0, observed=20.0))
    world.passes(SYNC)
    assert world.scales.writes == [("ml/Deployment/llama", 6)]
    ((key, warning, reason, message),) = world.events.events
    assert (key, warning, reason) == ("ml/llama", False, "Forecast")
    assert "from 2 to 6" in message
    status = world.store.status(uid)
    assert (status.current_replicas, status.desired_replicas, status.observed_rate) == (2, 6, 20.0)
    assert status.forecast is not None
    assert status.forecast.quantile == 55.0
    assert status.last_scale_time is not None
    assert status.observed_generation == 1
    assert world.condition(uid, ConditionType.ABLE_TO_SCALE) == (True, "SucceededRescale")
    assert world.condition(uid, ConditionType.FORECAST_AVAILABLE) == (True, "ForecastReady")
    assert world.condition(uid, ConditionType.SCALING_LIMITED) == (False, "DesiredWithinRange")
    assert world.condition(uid, ConditionType.CONFLICTING_AUTOSCALER) == (False, "NoConflict")
    labels = {"namespace": "ml", "autoscaler": "llama", "agent": "llama"}
    assert world.sample("scheduler_extender_autoscaler_desired_replicas", labels) == 6
    assert (
        world.sample(
            "scheduler_extender_autoscaler_forecast_requests_per_second",
            {**labels, "series": "quantile"},
        )
        == 55.0
    )
    assert (
        world.sample(
            "scheduler_extender_autoscaler_decisions_total",
            {"reason": "forecast", "direction": "up"},
        )
        == 1
    )
    assert (
        world.sample(
            "scheduler_extender_autoscaler_scale_updates_total",
            {"direction": "up", "outcome": "success"},
        )
        == 1
    )


def test_dry_run_changes_only_status() -> None:
    world = World()
    uid = world.add(autoscaler("llama", mode=Mode.DRY_RUN), 2, ready(55.0))
    world.passes(3 * SYNC)
    assert world.scales.writes == []
    assert world.events.events == []
    assert world.store.status(uid).desired_replicas == 6
    assert world.condition(uid, ConditionType.ABLE_TO_SCALE) == (True, "DryRun")


def test_scale_down_only_after_the_window_and_a_new_term_waits_again() -> None:
    world = World()
    world.add(autoscaler("llama"), 8, ready(80.0))
    world.passes(SYNC)
    world.forecaster.outlook["llama"] = ready(20.0)
    world.passes(300 - SYNC)
    assert world.replicas("llama") == 8
    world.passes(SYNC)
    assert world.replicas("llama") == 2
    assert world.events.reasons()[-1] == "Stabilised"
    # A new leader term remembers nothing: it waits a whole window before going down.
    world.forecaster.outlook["llama"] = ready(80.0)
    world.passes(SYNC)
    assert world.replicas("llama") == 8
    stop = threading.Event()
    stop.set()
    world.controller.run(stop, SYNC)  # starts a term and returns at once
    world.forecaster.outlook["llama"] = ready(20.0)
    world.passes(300 - SYNC)
    assert world.replicas("llama") == 8


def test_hpa_on_the_same_target_stops_the_controller() -> None:
    world = World()
    uid = world.add(autoscaler("llama"), 2, ready(90.0))
    world.conflicts.hpas["ml/Deployment/llama"] = "HorizontalPodAutoscaler/llama"
    world.passes(4 * SYNC)
    assert world.scales.writes == []
    assert world.condition(uid, ConditionType.CONFLICTING_AUTOSCALER) == (
        True,
        "HorizontalPodAutoscaler",
    )
    assert world.condition(uid, ConditionType.ABLE_TO_SCALE) == (False, "ConflictingAutoscaler")
    assert world.store.status(uid).desired_replicas == 9  # still shown
    assert world.events.reasons() == ["HorizontalPodAutoscaler"]  # once, not every pass
    del world.conflicts.hpas["ml/Deployment/llama"]
    world.passes(SYNC)
    assert world.replicas("llama") == 9


def test_two_agent_autoscalers_on_one_target_both_stand_down() -> None:
    world = World()
    one = world.add(autoscaler("a", target="shared"), 2, ready(90.0))
    two = world.add(autoscaler("b", target="shared"), 2, ready(10.0))
    world.passes(SYNC)
    assert world.scales.writes == []
    for uid in (one, two):
        assert world.condition(uid, ConditionType.CONFLICTING_AUTOSCALER) == (
            True,
            "AgentAutoscaler",
        )


def test_forecaster_failure_holds_and_says_so() -> None:
    world = World()
    uid = world.add(autoscaler("llama"), 5, ready(50.0))
    world.passes(400)
    world.forecaster.error = RuntimeError("connection refused")
    world.passes(900)
    assert world.replicas("llama") == 5
    status, reason = world.condition(uid, ConditionType.FORECAST_AVAILABLE)
    assert (status, reason) == (False, "SourceUnavailable")
    found = world.store.status(uid).condition(ConditionType.FORECAST_AVAILABLE)
    assert found is not None
    assert "connection refused" in found.condition.message


def test_missing_target_is_reported_once() -> None:
    world = World()
    a = autoscaler("llama")
    world.store.add(a)
    world.passes(3 * SYNC)
    assert world.condition(a.uid, ConditionType.ABLE_TO_SCALE) == (False, "FailedGetScale")
    assert world.events.reasons() == ["FailedGetScale"]
    assert world.forecaster.asked == []  # nothing to decide: the forecast is not even read


def test_target_scaled_to_zero_is_paused() -> None:
    world = World()
    uid = world.add(autoscaler("llama"), 0, ready(90.0))
    world.passes(SYNC)
    assert world.scales.writes == []
    assert world.condition(uid, ConditionType.ABLE_TO_SCALE) == (False, "ScalingDisabled")


def test_failed_scale_write_is_a_condition_and_a_warning() -> None:
    world = World()
    uid = world.add(autoscaler("llama"), 2, ready(90.0))
    world.scales.fail_writes = True
    world.passes(SYNC)
    assert world.condition(uid, ConditionType.ABLE_TO_SCALE) == (False, "FailedUpdateScale")
    assert world.events.events[-1][1] is True
    assert world.store.status(uid).last_scale_time is None


def test_invalid_spec_is_reported() -> None:
    world = World()
    bad = dataclasses.replace(autoscaler("llama"), policy=None, problem="spec.quantile: too big")
    world.store.add(bad)
    world.passes(SYNC)
    assert world.condition(bad.uid, ConditionType.ABLE_TO_SCALE) == (False, "InvalidSpec")


def test_nothing_is_written_after_leadership_is_lost() -> None:
    world = World()
    world.add(autoscaler("llama"), 2, ready(90.0))
    world.leader = False
    world.passes(SYNC)
    assert world.scales.writes == []


def test_cluster_budget_goes_to_the_hottest_replicas() -> None:
    world = World(budgets=BudgetConfig(cluster=10))
    world.add(autoscaler("hot"), 2, ready(120.0))  # wants 12
    warm = world.add(autoscaler("warm"), 2, ready(40.0))  # wants 4
    cold = world.add(autoscaler("cold"), 1, ready(5.0))  # wants 1
    world.passes(SYNC)
    assert (world.replicas("hot"), world.replicas("warm"), world.replicas("cold")) == (7, 2, 1)
    assert world.events.reasons() == ["Limited"]  # warm was cut to what it runs: no action
    assert world.condition(warm, ConditionType.SCALING_LIMITED) == (True, "GPUBudget")
    assert world.store.status(warm).desired_replicas == 2
    assert world.condition(cold, ConditionType.SCALING_LIMITED) == (False, "DesiredWithinRange")


def test_namespace_budget_counts_gpus_per_replica() -> None:
    world = World(budgets=BudgetConfig(namespaces={"ml": 8}))
    world.add(autoscaler("big"), 1, ready(40.0))  # wants 4 replicas of 2 GPUs
    world.add(autoscaler("other", namespace="free"), 1, ready(40.0))
    world.scales.gpus["ml/Deployment/big"] = 2
    world.passes(SYNC)
    assert world.replicas("big") == 4  # exactly 8 GPUs
    world.forecaster.outlook["big"] = ready(60.0)
    world.passes(SYNC)
    assert world.replicas("big") == 4
    assert world.replicas("other", namespace="free") == 4  # outside the namespace budget


def test_conflicting_autoscaler_counts_against_the_budget_uncut() -> None:
    world = World(budgets=BudgetConfig(cluster=6))
    world.add(autoscaler("hpa"), 4, ready(0.0))
    world.conflicts.hpas["ml/Deployment/hpa"] = "HorizontalPodAutoscaler/hpa"
    world.add(autoscaler("llama"), 1, ready(50.0))
    world.passes(SYNC)
    assert (world.replicas("hpa"), world.replicas("llama")) == (4, 2)


def test_deleted_autoscalers_leave_no_series() -> None:
    world = World()
    uid = world.add(autoscaler("llama"), 2, ready(30.0))
    world.passes(SYNC)
    labels = {"namespace": "ml", "autoscaler": "llama", "agent": "llama"}
    assert world.sample("scheduler_extender_autoscaler_desired_replicas", labels) == 3
    del world.store.objects[uid]
    world.passes(SYNC)
    assert world.sample("scheduler_extender_autoscaler_desired_replicas", labels) is None


def test_condition_times_only_move_when_a_condition_flips() -> None:
    world = World()
    world.add(autoscaler("llama"), 3, ready(30.0))
    world.passes(SYNC)
    transitions = world.store.status("uid-ml-llama").conditions
    world.passes(5 * SYNC)
    # Condition times only move when a condition flips.
    assert world.store.status("uid-ml-llama").conditions == transitions


def test_run_reconciles_on_a_kick_and_stops() -> None:
    world = World()
    world.add(autoscaler("llama"), 2, ready(30.0))
    stop = threading.Event()
    thread = threading.Thread(target=world.controller.run, args=(stop, 3600.0))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while world.controller.last_pass is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first = len(world.forecaster.asked)
        assert first == 1
        world.controller.kick()
        deadline = time.monotonic() + 5
        while len(world.forecaster.asked) == first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(world.forecaster.asked) == first + 1
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyError("x")])
def test_a_failing_pass_is_counted_not_raised(error: Exception) -> None:
    world = World()
    world.add(autoscaler("llama"), 2, ready(30.0))

    def broken() -> Sequence[Autoscaler]:
        raise error

    world.store.list_autoscalers = broken  # type: ignore[method-assign]
    world.controller.reconcile_safely()
    assert (
        world.sample("scheduler_extender_autoscaler_reconcile_errors_total", {"stage": "pass"}) == 1
    )
