"""The controller's forecaster: history in, per-agent outlooks over the lead time out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pytest

from scheduler_extender.adapters.autoscaler.forecast import ModelLoadForecaster
from scheduler_extender.adapters.prometheus.forecasting import (
    ForecastPlan,
    ForecastService,
    PrometheusRates,
)
from scheduler_extender.adapters.prometheus.response import InstantSample, RangeSeries
from scheduler_extender.domain.autoscaling.outlook import ForecastState, OutlookRequest
from scheduler_extender.domain.forecast.series import SeriesBatch

STEP = 60.0
SEASON = 7200.0  # a two-hour "day" keeps the arrays small
NOW = 1_700_006_400.0 + 1800.0  # a quarter into a season: the daily ramp is rising


def daily(t: np.ndarray) -> np.ndarray:
    """A seasonal rate: 20 req/s at night, 100 at the peak (phase SEASON/2)."""
    return 60.0 - 40.0 * np.cos(2 * math.pi * (t % SEASON) / SEASON)


@dataclass
class FakeRates:
    agents: dict[str, float] = field(default_factory=lambda: {"llama": 0.0})  # agent -> first seen
    fail_history: Exception | None = None
    fail_current: Exception | None = None
    history_reads: int = 0

    def rate_history(self, *, start: float, end: float, step: float) -> SeriesBatch:
        self.history_reads += 1
        if self.fail_history is not None:
            raise self.fail_history
        points = round((end - start) / step) + 1
        stamps = start + step * np.arange(points)
        known = list(self.agents)
        values = np.array(
            [np.where(stamps >= self.agents[a], daily(stamps), np.nan) for a in known]
        )
        return SeriesBatch(tuple(known), start, step, values.reshape(len(known), points))

    def current_rates(self) -> Mapping[str, float]:
        if self.fail_current is not None:
            raise self.fail_current
        return {a: float(daily(np.array([NOW]))[0]) for a in self.agents}

    def close(self) -> None:
        pass


PLAN = ForecastPlan(step=STEP, history=2 * SEASON, seasons=(SEASON,), horizon=900.0, quantile=0.9)


def forecaster(rates: FakeRates, refresh: float = 60.0) -> ModelLoadForecaster:
    return ModelLoadForecaster(ForecastService(rates, PLAN), refresh=refresh)


LLAMA = OutlookRequest("llama", horizon=600.0, quantile=0.9)


def test_a_seasonal_agent_is_forecast_ahead_of_its_ramp() -> None:
    outlook = forecaster(FakeRates()).outlooks({LLAMA}, NOW)[LLAMA]
    assert outlook.state is ForecastState.READY
    assert outlook.observed == pytest.approx(float(daily(np.array([NOW]))[0]))
    later = float(daily(np.array([NOW + 600.0]))[0])
    assert outlook.point_peak is not None
    assert outlook.quantile_peak is not None
    # The peak over the next ten minutes is the rate ten minutes out, not today's rate.
    assert outlook.point_peak == pytest.approx(later, rel=0.1)
    assert outlook.quantile_peak >= outlook.point_peak
    assert outlook.generated_at == NOW
    assert "model" in outlook.detail


def test_a_longer_lead_time_sees_further_up_the_ramp() -> None:
    model = forecaster(FakeRates())
    short = OutlookRequest("llama", horizon=120.0, quantile=0.9)
    answers = model.outlooks({short, LLAMA}, NOW)
    assert answers[short].point_peak is not None
    assert answers[LLAMA].point_peak is not None
    assert answers[LLAMA].point_peak > answers[short].point_peak + 5


def test_history_is_read_once_per_refresh_and_again_for_new_agents() -> None:
    rates = FakeRates()
    model = forecaster(rates, refresh=60.0)
    model.outlooks({LLAMA}, NOW)
    model.outlooks({LLAMA}, NOW + 15)
    assert rates.history_reads == 1
    rates.agents["mistral"] = 0.0
    mistral = OutlookRequest("mistral", 600.0, 0.9)
    # The grid's next point is the first that can show the new agent.
    model.outlooks({LLAMA, mistral}, NOW + 30)
    assert rates.history_reads == 1
    model.outlooks({LLAMA, mistral}, NOW + STEP)
    assert rates.history_reads == 2
    model.outlooks({LLAMA}, NOW + STEP + 65)  # the read is older than the refresh
    assert rates.history_reads == 3


def test_history_failure_is_unavailable_but_keeps_the_observed_rate() -> None:
    rates = FakeRates(fail_history=RuntimeError("connection refused"))
    outlook = forecaster(rates).outlooks({LLAMA}, NOW)[LLAMA]
    assert outlook.state is ForecastState.UNAVAILABLE
    assert outlook.quantile_peak is None
    assert outlook.observed is not None
    assert "connection refused" in outlook.detail
    # The next pass tries again at once, and recovers.
    rates.fail_history = None
    assert forecaster(rates).outlooks({LLAMA}, NOW + 15)[LLAMA].state is ForecastState.READY


def test_a_failed_refresh_drops_the_old_forecast() -> None:
    rates = FakeRates()
    model = forecaster(rates)
    assert model.outlooks({LLAMA}, NOW)[LLAMA].state is ForecastState.READY
    rates.fail_history = RuntimeError("down")
    assert model.outlooks({LLAMA}, NOW + 120)[LLAMA].state is ForecastState.UNAVAILABLE


def test_current_rate_failure_leaves_the_observed_rate_unknown() -> None:
    rates = FakeRates(fail_current=RuntimeError("timeout"))
    outlook = forecaster(rates).outlooks({LLAMA}, NOW)[LLAMA]
    assert outlook.state is ForecastState.READY
    assert outlook.observed is None


def test_unknown_and_new_agents_have_no_history() -> None:
    rates = FakeRates(agents={"llama": 0.0, "fresh": NOW - 600})
    ghost = OutlookRequest("ghost", 600.0, 0.9)
    fresh = OutlookRequest("fresh", 600.0, 0.9)
    answers = forecaster(rates).outlooks({ghost, fresh}, NOW)
    assert answers[ghost].state is ForecastState.NO_HISTORY
    assert answers[ghost].quantile_peak is None
    assert answers[fresh].state is ForecastState.NO_HISTORY
    assert answers[fresh].quantile_peak is not None  # a short-history forecast, to scale up on


def test_no_requests_read_nothing() -> None:
    rates = FakeRates()
    assert forecaster(rates).outlooks(set(), NOW) == {}
    assert rates.history_reads == 0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="season"):
        ForecastPlan(step=60.0, history=7200.0, seasons=(60.0,), horizon=600.0, quantile=0.9)
    with pytest.raises(ValueError, match="refresh"):
        ModelLoadForecaster(ForecastService(FakeRates(), PLAN), refresh=0.0)


@dataclass
class FakeQuerier:
    queries: list[str] = field(default_factory=list)

    def query(self, promql: str, at: float | None = None) -> list[InstantSample]:
        self.queries.append(promql)
        return [
            InstantSample(MappingProxyType({"agent": "a"}), NOW, 3.0),
            InstantSample(MappingProxyType({"agent": "a", "job": "other"}), NOW, 1.0),
            InstantSample(MappingProxyType({"agent": "b"}), NOW, 7.0),
        ]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        self.queries.append(promql)
        stamps = np.arange(start, end + step, step)
        return [
            RangeSeries(MappingProxyType({"agent": name}), stamps, np.full(stamps.size, value))
            for name, value in (("a", 1.0), ("b", 2.0), ("c", 3.0))
        ]


def test_prometheus_rates_read_every_agent_and_the_controller_keeps_those_asked_for() -> None:
    querier = FakeQuerier()
    rates = PrometheusRates(querier, query="sum by (agent) (rate(x[1m]))", agent_label="agent")
    assert rates.current_rates() == {"a": 4.0, "b": 7.0}
    batch = rates.rate_history(start=NOW - 600, end=NOW, step=60.0)
    assert batch.agents == ("a", "b", "c")
    assert batch.points == 11
    assert batch.values[1].tolist() == [2.0] * 11
    assert querier.queries == ["sum by (agent) (rate(x[1m]))"] * 2
    asked = OutlookRequest("a", horizon=120.0, quantile=0.9)
    service = ForecastService(rates, PLAN)
    outlooks = ModelLoadForecaster(service, refresh=60.0).outlooks({asked}, NOW)
    assert list(outlooks) == [asked]
    assert outlooks[asked].observed == 4.0


def test_one_fit_per_refresh_serves_every_lead_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler_extender.adapters.prometheus import forecasting as module

    calls: list[int] = []
    real = module.forecast_seasons

    def counting(batch: SeriesBatch, settings: object, seasons: object) -> object:
        calls.append(1)
        return real(batch, settings, seasons)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "forecast_seasons", counting)
    model = forecaster(FakeRates())
    short = OutlookRequest("llama", horizon=120.0, quantile=0.9)
    model.outlooks({short, LLAMA}, NOW)
    model.outlooks({LLAMA, short}, NOW + 15)
    assert len(calls) == 1
    other_quantile = OutlookRequest("llama", horizon=120.0, quantile=0.5)
    model.outlooks({LLAMA, other_quantile}, NOW + 30)
    assert len(calls) == 2
