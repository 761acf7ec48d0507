"""The refresh loop with a fake Prometheus: publish, correct, survive outages, export."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from scheduler_extender.adapters.prometheus.client import PrometheusUnavailableError
from scheduler_extender.adapters.prometheus.forecasting import (
    ForecastPlan,
    ForecastService,
    PrometheusRates,
)
from scheduler_extender.adapters.prometheus.metrics import ForecastMetrics
from scheduler_extender.adapters.prometheus.response import InstantSample, RangeSeries
from scheduler_extender.adapters.prometheus.source import LoopSettings, PrometheusPopularity
from scheduler_extender.domain.popularity import NEUTRAL

STEP = 60.0
NOW = 1_700_000_040.0  # a multiple of the step


@dataclass
class FakePrometheus:
    """Flat per-agent rates over the history; ``current`` answers instant queries."""

    rates: dict[str, float]
    current: dict[str, float] = field(default_factory=dict)
    down: bool = False
    range_calls: list[tuple[float, float, float]] = field(default_factory=list)
    closed: bool = False

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        self._check()
        self.range_calls.append((start, end, step))
        stamps = np.arange(start, end + step / 2, step)
        return [
            RangeSeries({"agent": a}, stamps, np.full(stamps.size, r))
            for a, r in self.rates.items()
        ]

    def query(self, promql: str, at: float | None = None) -> list[InstantSample]:
        self._check()
        return [InstantSample({"agent": a}, NOW, r) for a, r in self.current.items()]

    def close(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.down:
            raise PrometheusUnavailableError("connection refused")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SETTINGS = LoopSettings(
    refresh_interval=30.0,
    correction_interval=10.0,
    max_age=300.0,
    horizon=600.0,
    correction_factor=2.0,
)
PLAN = ForecastPlan(step=STEP, history=6 * 3600.0, seasons=(3600.0,), horizon=600.0, quantile=0.9)


def service(prometheus: FakePrometheus, plan: ForecastPlan = PLAN) -> ForecastService:
    rates = PrometheusRates(
        prometheus, query="sum by (agent) (rate(agent_requests_total[1m]))", agent_label="agent"
    )
    return ForecastService(rates, plan)


def make(
    prometheus: FakePrometheus, *, top: int = 10
) -> tuple[PrometheusPopularity, Clock, CollectorRegistry]:
    registry = CollectorRegistry()
    clock = Clock()
    source = PrometheusPopularity(
        service=service(prometheus),
        settings=SETTINGS,
        metrics=ForecastMetrics(registry, top),
        url="http://prom.test",
        wall=lambda: NOW + 17.0,
        monotonic=clock,
    )
    return source, clock, registry


def test_a_refresh_publishes_the_forecast_rates() -> None:
    prometheus = FakePrometheus({"hot": 50.0, "cold": 0.5})
    source, _, registry = make(prometheus)
    assert source.current() is NEUTRAL  # nothing fitted yet
    assert source.refresh()
    popularity = source.current()
    assert popularity.source == "prometheus"
    assert popularity.rate("hot") == pytest.approx(50.0)
    assert popularity.rate("cold") == pytest.approx(0.5)
    start, end, step = prometheus.range_calls[0]
    assert (end, step) == (NOW, STEP)  # aligned to the step, so the grid is stable
    assert end - start == PLAN.history
    assert registry.get_sample_value("scheduler_extender_forecast_source_up") == 1.0
    assert registry.get_sample_value("scheduler_extender_forecast_age_seconds") == 0.0
    assert (
        registry.get_sample_value("scheduler_extender_forecast_last_success_timestamp_seconds")
        == NOW
    )
    rate = registry.get_sample_value(
        "scheduler_extender_forecast_requests_per_second", {"agent": "hot"}
    )
    assert rate == pytest.approx(50.0)
    assert registry.get_sample_value("scheduler_extender_forecast_agents", {"status": "ok"}) == 2.0


def test_an_observed_burst_corrects_the_forecast_at_once() -> None:
    prometheus = FakePrometheus({"a": 10.0, "b": 10.0})
    source, _, registry = make(prometheus)
    source.refresh()
    prometheus.current = {"a": 15.0, "b": 45.0, "new": 3.0}
    assert source.correct()
    popularity = source.current()
    assert popularity.rate("a") == pytest.approx(10.0)  # within the factor
    assert popularity.rate("b") == 45.0  # more than twice the forecast
    assert popularity.rate("new") == 3.0  # not in the history yet
    assert source.status()["corrected_agents"] == 2
    assert registry.get_sample_value("scheduler_extender_forecast_corrected_agents") == 2.0


def test_an_outage_keeps_the_last_forecast_until_the_maximum_age() -> None:
    prometheus = FakePrometheus({"a": 10.0})
    source, clock, registry = make(prometheus)
    source.refresh()
    prometheus.down = True
    clock.now += 200.0
    assert not source.refresh()
    assert not source.correct()
    assert source.current().rate("a") == pytest.approx(10.0)  # 200s old: still served
    status = source.status()
    assert status["up"] is False
    assert status["stale"] is False
    assert status["consecutive_failures"] == 2
    assert "connection refused" in status["last_error"]
    assert registry.get_sample_value("scheduler_extender_forecast_source_up") == 0.0
    assert (
        registry.get_sample_value(
            "scheduler_extender_forecast_refreshes_total", {"outcome": "error"}
        )
        == 1.0
    )

    clock.now += 101.0  # now older than max_age
    assert source.current() is NEUTRAL
    assert source.status()["stale"] is True
    assert registry.get_sample_value("scheduler_extender_forecast_stale") == 1.0
    assert registry.get_sample_value("scheduler_extender_forecast_age_seconds") == 301.0

    prometheus.down = False
    assert source.refresh()
    assert source.current().rate("a") == pytest.approx(10.0)
    assert source.status()["consecutive_failures"] == 0


def test_per_agent_metrics_are_bounded_to_the_top_agents_and_other() -> None:
    rates = {f"agent-{i}": float(100 - i) for i in range(8)}
    source, _, registry = make(FakePrometheus(rates), top=3)
    source.refresh()
    samples = [
        s
        for metric in registry.collect()
        if metric.name == "scheduler_extender_forecast_requests_per_second"
        for s in metric.samples
    ]
    assert {s.labels["agent"] for s in samples} == {"agent-0", "agent-1", "agent-2", "other"}
    other = registry.get_sample_value(
        "scheduler_extender_forecast_requests_per_second", {"agent": "other"}
    )
    assert other == pytest.approx(sum(float(100 - i) for i in range(3, 8)))
    assert (
        registry.get_sample_value(
            "scheduler_extender_forecast_backtest_coverage_ratio", {"agent": "other"}
        )
        is not None
    )


def test_the_loop_thread_refreshes_in_the_background_and_stops() -> None:
    prometheus = FakePrometheus({"a": 4.0})
    source = PrometheusPopularity(
        service=service(
            prometheus,
            ForecastPlan(
                step=STEP, history=3 * 3600.0, seasons=(3600.0,), horizon=300.0, quantile=0.9
            ),
        ),
        settings=LoopSettings(
            refresh_interval=0.05,
            correction_interval=0.01,
            max_age=600.0,
            horizon=300.0,
            correction_factor=2.0,
        ),
    )
    source.start()
    try:
        deadline = time.monotonic() + 10.0
        while len(prometheus.range_calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(prometheus.range_calls) >= 2
        assert source.current().rate("a") == pytest.approx(4.0)
    finally:
        source.stop()
    assert prometheus.closed
    calls = len(prometheus.range_calls)
    time.sleep(0.1)
    assert len(prometheus.range_calls) == calls  # stopped for good
    assert source.current().rate("a") == pytest.approx(4.0)  # the last forecast stays
