"""Metrics of the popularity forecast: its age, its source's health, its accuracy.

Per-agent series are bounded: only the ``top`` agents by placement rate get
their own ``agent`` label; all others are folded into ``agent="other"``
(rates summed, backtest scores averaged).
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from scheduler_extender.domain.forecast.forecaster import AgentForecast, Forecasts, Model, Status

PREFIX = "scheduler_extender"
OTHER = "other"
REFRESH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class ForecastMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    top: int = 10  # agents with a label of their own

    def __post_init__(self) -> None:
        registry = self.registry
        self.age = Gauge(
            f"{PREFIX}_forecast_age_seconds",
            "Seconds since the forecast in use was fitted; NaN before the first one.",
            registry=registry,
        )
        self.stale = Gauge(
            f"{PREFIX}_forecast_stale",
            "1 when the forecast is older than the maximum age and scoring is neutral.",
            registry=registry,
        )
        self.source_up = Gauge(
            f"{PREFIX}_forecast_source_up",
            "1 when the last call to Prometheus succeeded.",
            registry=registry,
        )
        self.last_success = Gauge(
            f"{PREFIX}_forecast_last_success_timestamp_seconds",
            "Unix time of the data end of the last successful forecast refresh.",
            registry=registry,
        )
        self.refreshes = Counter(
            f"{PREFIX}_forecast_refreshes_total",
            "Forecast refreshes (range query, fit, backtest), by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.queries = Counter(
            f"{PREFIX}_prometheus_queries_total",
            "Queries the popularity forecast sent to Prometheus, by kind (range, instant) "
            "and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.corrected_agents = Gauge(
            f"{PREFIX}_forecast_corrected_agents",
            "Agents whose observed rate currently replaces their forecast.",
            registry=registry,
        )
        self.refresh_duration = Histogram(
            f"{PREFIX}_forecast_refresh_duration_seconds",
            "Time of a successful refresh: range query plus fitting every agent.",
            buckets=REFRESH_BUCKETS,
            registry=registry,
        )
        self.agents = Gauge(
            f"{PREFIX}_forecast_agents",
            "Agents in the last forecast, by status.",
            ["status"],
            registry=registry,
        )
        self.models = Gauge(
            f"{PREFIX}_forecast_models",
            "Agents in the last forecast, by the model chosen for them.",
            ["model"],
            registry=registry,
        )
        self.rate = Gauge(
            f"{PREFIX}_forecast_requests_per_second",
            "Request rate placement uses per agent (forecast peak over the horizon, corrected).",
            ["agent"],
            registry=registry,
        )
        self.mase = Gauge(
            f"{PREFIX}_forecast_backtest_mase",
            "Backtest MASE against seasonal naive (below 1 beats it).",
            ["agent"],
            registry=registry,
        )
        self.pinball = Gauge(
            f"{PREFIX}_forecast_backtest_pinball_loss",
            "Backtest pinball loss of the upper quantile, in requests per second.",
            ["agent"],
            registry=registry,
        )
        self.coverage = Gauge(
            f"{PREFIX}_forecast_backtest_coverage_ratio",
            "Backtest share of actual rates at or below the upper quantile.",
            ["agent"],
            registry=registry,
        )

    def watch_age(self, age: Callable[[], float | None], stale: Callable[[], bool]) -> None:
        """Compute the age at scrape time, so it keeps growing while refreshes fail."""
        self.age.set_function(lambda: _or_nan(age()))
        self.stale.set_function(lambda: float(stale()))

    def record_forecasts(self, forecasts: Forecasts, rates: Mapping[str, float]) -> None:
        statuses = Tally(f.status for f in forecasts)
        for status in Status:
            self.agents.labels(status.value).set(statuses[status])
        models = Tally(f.model for f in forecasts)
        for model in Model:
            self.models.labels(model.value).set(models[model])
        self._record_scores(forecasts, rates)

    def _record_scores(self, forecasts: Forecasts, rates: Mapping[str, float]) -> None:
        ranked = sorted(rates, key=lambda agent: rates[agent], reverse=True)
        named = set(ranked[: self.top])
        by_agent = forecasts.by_agent()
        for gauge in (self.rate, self.mase, self.pinball, self.coverage):
            gauge.clear()  # agents that left the top-K must not linger
        others: list[AgentForecast] = []
        other_rate = 0.0
        for agent, rate in rates.items():
            if agent not in named:
                other_rate += rate
                if agent in by_agent:
                    others.append(by_agent[agent])
                continue
            self.rate.labels(agent).set(rate)
            scored = by_agent.get(agent)
            if scored is not None and scored.backtest is not None:
                self.mase.labels(agent).set(_or_nan(scored.backtest.mase))
                self.pinball.labels(agent).set(scored.backtest.pinball_loss)
                self.coverage.labels(agent).set(scored.backtest.coverage)
        if len(rates) > len(named):
            self.rate.labels(OTHER).set(other_rate)
        tested = [f.backtest for f in others if f.backtest is not None]
        if tested:
            mases = [b.mase for b in tested if b.mase is not None]
            self.mase.labels(OTHER).set(sum(mases) / len(mases) if mases else math.nan)
            self.pinball.labels(OTHER).set(sum(b.pinball_loss for b in tested) / len(tested))
            self.coverage.labels(OTHER).set(sum(b.coverage for b in tested) / len(tested))


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
