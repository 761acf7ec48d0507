"""The replica arithmetic of the predictive autoscaler, driven by a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler_extender.domain.autoscaling.budget import BudgetClaim, Contender, allocate, enforce
from scheduler_extender.domain.autoscaling.conditions import ConditionType
from scheduler_extender.domain.autoscaling.outlook import (
    ForecastState,
    ForecastStep,
    LoadOutlook,
    peaks_within,
)
from scheduler_extender.domain.autoscaling.policy import ScalingPolicy
from scheduler_extender.domain.autoscaling.replicas import (
    Decision,
    Reason,
    ScalingMemory,
    decide,
    recommend,
    replicas_for,
)

SYNC = 15.0  # seconds between reconcile passes


def ready(
    quantile: float, observed: float | None = None, point: float | None = None
) -> LoadOutlook:
    return LoadOutlook(
        ForecastState.READY,
        observed=observed,
        point_peak=quantile if point is None else point,
        quantile_peak=quantile,
    )


@dataclass
class Autoscaler:
    """One autoscaler decided every SYNC seconds on a fake clock, applying what it decides."""

    policy: ScalingPolicy
    current: int
    now: float = 10_000.0
    memory: ScalingMemory = field(init=False)
    decisions: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.memory = ScalingMemory.start(self.now, self.current)

    def step(self, outlook: LoadOutlook, dt: float = SYNC) -> Decision:
        self.now += dt
        decision, self.memory = decide(self.policy, self.current, outlook, self.memory, self.now)
        self.current = decision.replicas
        self.decisions.append(decision)
        return decision

    def run(self, outlook: LoadOutlook, seconds: float) -> Decision:
        decision = self.step(outlook)
        for _ in range(int(seconds // SYNC) - 1):
            decision = self.step(outlook)
        return decision

    def settled(self, outlook: LoadOutlook) -> Autoscaler:
        """Past the controller's first stabilisation window with steady load."""
        self.run(outlook, self.policy.stabilization_window + SYNC)
        return self


def policy(**overrides: object) -> ScalingPolicy:
    values: dict[str, object] = {
        "min_replicas": 1,
        "max_replicas": 20,
        "target_per_replica": 10.0,
        "lead_time": 300.0,
        "quantile": 0.9,
        "headroom": 0.0,
        "stabilization_window": 300.0,
        "tolerance": 0.1,
    }
    values.update(overrides)
    return ScalingPolicy(**values)  # type: ignore[arg-type]


# -- the formula -----------------------------------------------------------------


def test_forecast_quantile_with_headroom_sets_the_count_before_load_arrives() -> None:
    scaler = Autoscaler(policy(headroom=0.2), current=2)
    decision = scaler.step(ready(quantile=50.0, observed=12.0))
    assert decision.replicas == 6  # ceil(50 * 1.2 / 10), while observed alone needs 2
    assert decision.reason is Reason.FORECAST
    assert (decision.forecast_replicas, decision.reactive_replicas) == (6, 2)


def test_reactive_floor_corrects_a_forecast_that_runs_cold() -> None:
    scaler = Autoscaler(policy(headroom=0.2), current=2)
    decision = scaler.step(ready(quantile=20.0, observed=71.0))
    assert decision.replicas == 8  # ceil(71 / 10): reality beats ceil(20 * 1.2 / 10) = 3
    assert decision.reason is Reason.REACTIVE
    assert "more than the forecast's 3" in decision.message


def test_scale_up_is_immediate_even_inside_the_window() -> None:
    scaler = Autoscaler(policy(), current=2)
    first = scaler.step(ready(quantile=40.0, observed=20.0))
    second = scaler.step(ready(quantile=90.0, observed=20.0))
    assert (first.replicas, second.replicas) == (4, 9)


def test_float_rates_round_without_an_extra_replica() -> None:
    assert replicas_for(3 * 0.1, 0.1) == 3
    assert replicas_for(30.01, 10.0) == 4
    assert replicas_for(0.0, 10.0) == 0


# -- lead-time lookahead --------------------------------------------------------------


def ramp(now: float, peak_at: float, peak: float, base: float = 10.0) -> list[ForecastStep]:
    """A per-minute forecast path for the next 15 minutes with one peak."""
    steps = []
    for minute in range(1, 16):
        at = now + 60 * minute
        value = peak if at == now + peak_at else base
        steps.append(ForecastStep(at, point=value * 0.8, upper=value))
    return steps


@pytest.mark.parametrize(
    ("peak_in", "lead", "expected"),
    [(240, 300, 80.0), (300, 300, 80.0), (360, 300, 10.0), (360, 420, 80.0)],
)
def test_lookahead_takes_the_max_over_the_lead_time(
    peak_in: int, lead: int, expected: float
) -> None:
    now = 1_000.0
    peaks = peaks_within(ramp(now, peak_in, 80.0), now, lead)
    assert peaks is not None
    assert peaks[1] == expected
    assert peaks[0] == pytest.approx(expected * 0.8)


def test_lookahead_drives_replicas_before_the_peak() -> None:
    scaler = Autoscaler(policy(), current=1)
    now = scaler.now + SYNC
    point, upper = peaks_within(ramp(now, 240, 80.0), now, scaler.policy.lead_time) or (0, 0)
    decision = scaler.step(LoadOutlook(ForecastState.READY, 10.0, point, upper))
    assert decision.replicas == 8  # the peak four minutes out, not today's 10 req/s


def test_lookahead_with_a_lead_shorter_than_a_step_sees_the_next_step() -> None:
    steps = [ForecastStep(160.0, 5.0, 7.0), ForecastStep(220.0, 50.0, 70.0)]
    assert peaks_within(steps, 100.0, 30.0) == (5.0, 7.0)
    assert peaks_within(steps, 300.0, 30.0) is None


# -- stabilisation and the observed-rate guard ---------------------------------------------


def test_scale_down_waits_for_the_whole_stabilisation_window() -> None:
    scaler = Autoscaler(policy(), current=8).settled(ready(80.0, observed=80.0))
    assert scaler.current == 8
    low = ready(20.0, observed=20.0)
    for _ in range(int(300 // SYNC) - 1):
        held = scaler.step(low)
        assert held.replicas == 8
        assert held.reason is Reason.STABILISED
        assert "peak at 8" in held.message
    down = scaler.step(low)
    assert (down.replicas, down.reason, down.direction) == (2, Reason.STABILISED, "down")


def test_a_spike_inside_the_window_restarts_the_wait() -> None:
    scaler = Autoscaler(policy(), current=8).settled(ready(80.0, observed=80.0))
    scaler.run(ready(20.0, observed=20.0), 200)
    scaler.step(ready(60.0, observed=20.0))  # one recommendation of 6
    after = scaler.run(ready(20.0, observed=20.0), 200)
    assert after.replicas == 6  # the 8s left the window, the 6 has not
    assert scaler.run(ready(20.0, observed=20.0), 120).replicas == 2


def test_scale_down_needs_the_observed_rate_low_too() -> None:
    scaler = Autoscaler(policy(headroom=0.25), current=8).settled(ready(64.0, observed=64.0))
    # The forecast says 2 replicas but reality still runs at 48 req/s.
    decision = scaler.run(ready(16.0, observed=48.0), 600)
    assert decision.replicas == 6  # ceil(48 * 1.25 / 10): not the forecast's 2
    assert scaler.run(ready(16.0, observed=16.0), 300 + SYNC).replicas == 2


def test_observed_rate_unknown_never_scales_down_on_the_forecast_alone() -> None:
    scaler = Autoscaler(policy(), current=8).settled(ready(80.0, observed=80.0))
    decision = scaler.run(ready(10.0, observed=None), 900)
    assert decision.replicas == 8
    assert "observed rate unknown" in decision.message


def test_zero_window_scales_down_on_the_next_pass() -> None:
    scaler = Autoscaler(policy(stabilization_window=0.0), current=8)
    assert scaler.step(ready(20.0, observed=20.0)).replicas == 2


# -- tolerance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantile", "expected", "reason"),
    [
        (185.0, 20, Reason.TOLERANCE),  # 7.5% less: kept
        (200.0, 20, Reason.FORECAST),  # exactly served
        (179.0, 18, Reason.STABILISED),  # 10.5% less: down, once the window allows
        (200.5, 21, Reason.FORECAST),  # half a replica short: up at once
    ],
)
def test_tolerance_damps_scale_downs_only(quantile: float, expected: int, reason: Reason) -> None:
    scaler = Autoscaler(policy(stabilization_window=0.0, max_replicas=30), current=20)
    decision = scaler.step(ready(quantile, observed=quantile))
    assert (decision.replicas, decision.reason) == (expected, reason)


def test_recommend_keeps_the_count_only_within_the_band_below() -> None:
    assert recommend(18.5, 20, 0.1) == (20, True)
    assert recommend(18.0, 20, 0.1) == (20, True)
    assert recommend(17.9, 20, 0.1) == (18, False)
    assert recommend(20.01, 20, 0.1) == (21, False)
    assert recommend(18.5, 20, 0.0) == (19, False)
    assert recommend(19.5, 20, 0.1) == (20, False)  # ceil is 20 anyway: nothing to damp


def test_a_load_hovering_around_a_boundary_does_not_flap() -> None:
    scaler = Autoscaler(policy(), current=10).settled(ready(100.0))
    counts = {scaler.step(ready(rate)).replicas for rate in [101.0, 99.0] * 60}
    assert counts == {11}  # up once, then held: 99 is within the tolerance below 11


def test_zero_tolerance_follows_every_replica() -> None:
    scaler = Autoscaler(policy(tolerance=0.0, stabilization_window=0.0), current=10)
    assert scaler.step(ready(101.0, observed=50.0)).replicas == 11
    assert scaler.step(ready(99.0, observed=50.0)).replicas == 10


# -- cold start ---------------------------------------------------------------------------


def test_restarted_controller_does_not_scale_down_before_one_window() -> None:
    scaler = Autoscaler(policy(), current=8)  # fresh memory: the controller just started
    low = ready(10.0, observed=10.0)
    assert all(scaler.step(low).replicas == 8 for _ in range(int(300 // SYNC) - 1))
    assert scaler.step(low).replicas == 1


def test_agent_without_history_is_never_scaled_down() -> None:
    scaler = Autoscaler(policy(), current=6)
    young = LoadOutlook(ForecastState.NO_HISTORY, observed=5.0, point_peak=8.0, quantile_peak=9.0)
    decision = scaler.run(young, 3600)
    assert decision.replicas == 6
    assert "no forecast history" in decision.message
    available = decision.condition(ConditionType.FORECAST_AVAILABLE)
    assert available is not None
    assert (available.status, available.reason) == (True, "ShortHistory")


def test_agent_without_history_still_scales_up() -> None:
    scaler = Autoscaler(policy(), current=2)
    young = LoadOutlook(
        ForecastState.NO_HISTORY, observed=35.0, point_peak=40.0, quantile_peak=45.0
    )
    assert scaler.step(young).replicas == 5
    no_forecast = LoadOutlook(ForecastState.NO_HISTORY, observed=62.0)
    decision = scaler.step(no_forecast)
    assert (decision.replicas, decision.reason) == (7, Reason.REACTIVE)
    available = decision.condition(ConditionType.FORECAST_AVAILABLE)
    assert available is not None
    assert (available.status, available.reason) == (False, "NoHistory")


# -- Prometheus outage -----------------------------------------------------------------------


def test_prometheus_down_holds_the_current_count() -> None:
    scaler = Autoscaler(policy(), current=5).settled(ready(50.0, observed=50.0))
    down = LoadOutlook(ForecastState.UNAVAILABLE, detail="connection refused")
    decision = scaler.run(down, 1800)
    assert (decision.replicas, decision.reason) == (5, Reason.NO_SIGNAL)
    available = decision.condition(ConditionType.FORECAST_AVAILABLE)
    assert available is not None
    assert (available.status, available.reason, available.message) == (
        False,
        "SourceUnavailable",
        "connection refused",
    )


def test_prometheus_down_scales_up_reactively_but_never_down() -> None:
    scaler = Autoscaler(policy(), current=5).settled(ready(50.0, observed=50.0))
    # A stale forecast must not be used while the source is down.
    hot = LoadOutlook(ForecastState.UNAVAILABLE, observed=72.0, quantile_peak=200.0)
    assert (scaler.step(hot).replicas, scaler.decisions[-1].reason) == (8, Reason.REACTIVE)
    cold = LoadOutlook(ForecastState.UNAVAILABLE, observed=5.0)
    decision = scaler.run(cold, 1800)
    assert decision.replicas == 8
    assert "never scaling down blind" in decision.message


@pytest.mark.parametrize("observed_during_outage", [None, 10.0])
def test_after_an_outage_a_full_window_of_trusted_data_is_needed(
    observed_during_outage: float | None,
) -> None:
    scaler = Autoscaler(policy(), current=5).settled(ready(50.0, observed=50.0))
    scaler.run(LoadOutlook(ForecastState.UNAVAILABLE, observed=observed_during_outage), 900)
    low = ready(10.0, observed=10.0)
    assert scaler.run(low, 300 - SYNC).replicas == 5
    assert scaler.step(low).replicas == 1


# -- bounds -------------------------------------------------------------------------------------


def test_max_replicas_limits_and_says_so() -> None:
    scaler = Autoscaler(policy(max_replicas=6), current=4)
    decision = scaler.step(ready(120.0, observed=30.0))
    assert (decision.replicas, decision.reason) == (6, Reason.LIMITED)
    limited = decision.condition(ConditionType.SCALING_LIMITED)
    assert limited is not None
    assert (limited.status, limited.reason) == (True, "TooManyReplicas")


def test_min_replicas_is_a_floor() -> None:
    scaler = Autoscaler(policy(min_replicas=3), current=3).settled(ready(30.0, observed=30.0))
    decision = scaler.run(ready(0.0, observed=0.0), 600)
    assert (decision.replicas, decision.reason) == (3, Reason.LIMITED)
    limited = decision.condition(ConditionType.SCALING_LIMITED)
    assert limited is not None
    assert (limited.status, limited.reason) == (True, "TooFewReplicas")


def test_a_count_outside_the_bounds_is_brought_back_at_once() -> None:
    scaler = Autoscaler(policy(max_replicas=4), current=9)
    decision = scaler.step(LoadOutlook(ForecastState.UNAVAILABLE))
    assert (decision.replicas, decision.reason) == (4, Reason.LIMITED)


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="maxReplicas"):
        policy(min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError, match="quantile"):
        policy(quantile=1.0)
    with pytest.raises(ValueError, match="finite"):
        LoadOutlook(ForecastState.READY, observed=float("nan"))


@given(
    current=st.integers(1, 40),
    quantile=st.none() | st.floats(0, 1000, allow_nan=False),
    observed=st.none() | st.floats(0, 1000, allow_nan=False),
    state=st.sampled_from(ForecastState),
    headroom=st.floats(0, 1),
    tolerance=st.floats(0, 0.5),
)
def test_decisions_respect_bounds_and_never_delay_a_scale_up(
    current: int,
    quantile: float | None,
    observed: float | None,
    state: ForecastState,
    headroom: float,
    tolerance: float,
) -> None:
    rules = policy(min_replicas=2, max_replicas=30, headroom=headroom, tolerance=tolerance)
    outlook = LoadOutlook(state, observed=observed, point_peak=quantile, quantile_peak=quantile)
    memory = ScalingMemory.start(0.0, current)
    decision, _ = decide(rules, current, outlook, memory, 1.0)
    assert 2 <= decision.replicas <= 30
    if decision.recommendation is not None and decision.recommendation > current:
        assert decision.replicas == min(decision.recommendation, 30)
    if state is not ForecastState.READY or observed is None:
        assert decision.replicas >= min(current, 30)  # never down blind, except to maxReplicas


# -- the shared GPU budget ---------------------------------------------------------------------


def test_budget_untouched_when_everything_fits() -> None:
    claims = [BudgetClaim("a", 3, 1, 1, 2.5), BudgetClaim("b", 2, 1, 2, 1.5)]
    assert allocate(claims, 7) == {"a": 3, "b": 2}


def test_budget_goes_to_the_highest_load_per_replica() -> None:
    claims = [
        BudgetClaim("hot", wanted=6, floor=1, gpus_per_replica=1, demand=6.0),
        BudgetClaim("warm", wanted=3, floor=1, gpus_per_replica=1, demand=3.0),
        BudgetClaim("cold", wanted=2, floor=1, gpus_per_replica=1, demand=0.5),
    ]
    # Floors take 3 GPUs; the other 4 go one by one to the highest load per replica:
    # hot (6/1), hot (6/2 ties warm 3/1; the key breaks it), warm (3/1), hot (6/3 > warm 3/2).
    assert allocate(claims, 7) == {"hot": 4, "warm": 2, "cold": 1}


def test_budget_skips_replicas_too_large_for_what_is_left() -> None:
    claims = [
        BudgetClaim("big", wanted=3, floor=0, gpus_per_replica=4, demand=9.0),
        BudgetClaim("small", wanted=3, floor=0, gpus_per_replica=1, demand=1.0),
    ]
    assert allocate(claims, 6) == {"big": 1, "small": 2}


def test_budget_keeps_floors_even_above_the_budget() -> None:
    claims = [BudgetClaim("a", 4, 3, 1, 4.0), BudgetClaim("b", 4, 3, 1, 4.0)]
    assert allocate(claims, 4) == {"a": 3, "b": 3}


def test_budget_ignores_replicas_without_gpus() -> None:
    claims = [BudgetClaim("cpu", 10, 1, 0, 10.0), BudgetClaim("gpu", 4, 1, 1, 4.0)]
    assert allocate(claims, 2) == {"cpu": 10, "gpu": 2}


def test_budget_ties_are_deterministic() -> None:
    claims = [BudgetClaim(k, 3, 0, 1, 3.0) for k in ("b", "a", "c")]
    assert allocate(claims, 4) == {"a": 2, "b": 1, "c": 1}


def test_enforce_marks_cut_decisions_as_limited_and_never_cuts_blind() -> None:
    rules = policy(min_replicas=1)
    hot, _ = decide(rules, 2, ready(80.0, observed=60.0), ScalingMemory.start(0, 2), 1.0)
    cool, _ = decide(rules, 2, ready(30.0, observed=30.0), ScalingMemory.start(0, 2), 1.0)
    blind, _ = decide(
        rules, 4, LoadOutlook(ForecastState.UNAVAILABLE), ScalingMemory.start(0, 4), 1.0
    )
    result = enforce(
        {
            "hot": Contender(hot, rules, 1),
            "cool": Contender(cool, rules, 1),
            "blind": Contender(blind, rules, 1),
        },
        budget=12,
        scope="cluster",
    )
    assert result["blind"].replicas == 4  # unknown load: never cut
    assert result["hot"].replicas + result["cool"].replicas == 8
    assert (result["hot"].replicas, result["cool"].replicas) == (6, 2)
    assert result["hot"].reason is Reason.LIMITED
    limited = result["cool"].condition(ConditionType.SCALING_LIMITED)
    assert limited is not None
    assert (limited.status, limited.reason) == (True, "GPUBudget")
    assert "cluster GPU budget of 12" in result["cool"].message
