"""The one forecast service: the extender and the controller see the same forecast."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from scheduler_extender.adapters.autoscaler.forecast import ModelLoadForecaster
from scheduler_extender.adapters.prometheus.forecasting import ForecastService
from scheduler_extender.adapters.prometheus.response import InstantSample, RangeSeries
from scheduler_extender.adapters.prometheus.wiring import forecast_service, prometheus_popularity
from scheduler_extender.config import PrometheusSettings
from scheduler_extender.domain.autoscaling.outlook import ForecastState, OutlookRequest
from scheduler_extender.domain.forecast.forecaster import AgentForecast, Status

STEP = 60.0
SEASON = 7200.0  # a two-hour "day" keeps the arrays small
NOW = 1_700_006_400.0 + 1800.0  # on the step grid, a quarter into a season


def rate(agent: str, t: np.ndarray) -> np.ndarray:
    """A seasonal agent with a trend, and a noisy flat one (deterministic noise)."""
    if agent == "llama":
        return 60.0 - 40.0 * np.cos(2 * math.pi * (t % SEASON) / SEASON) + 1e-4 * (t - NOW)
    return 5.0 + np.sin(t / 7.0) ** 2


@dataclass
class FakePrometheus:
    agents: tuple[str, ...] = ("llama", "mistral")
    range_calls: int = 0
    closed: bool = field(default=False)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        self.range_calls += 1
        stamps = np.arange(start, end + step / 2, step)
        return [RangeSeries({"agent": a}, stamps, rate(a, stamps)) for a in self.agents]

    def query(self, promql: str, at: float | None = None) -> list[InstantSample]:
        return [
            InstantSample({"agent": a}, NOW, float(rate(a, np.array([NOW]))[0]))
            for a in self.agents
        ]

    def close(self) -> None:
        self.closed = True


SETTINGS = PrometheusSettings(
    url="http://prom.test", step=STEP, season=SEASON, history=3 * SEASON, horizon=900.0
)
LEAD = 600.0  # the autoscaler's lead time; the controller fits it plus a refresh and two steps


def extender_forecast(service: ForecastService) -> dict[str, AgentForecast]:
    source = prometheus_popularity(SETTINGS, CollectorRegistry(), service)
    source.wall = lambda: NOW
    assert source.refresh()
    forecasts = source.latest()
    assert forecasts is not None
    assert forecasts.end == NOW
    return {f.agent: f for f in forecasts}


def controller_outlook(service: ForecastService, agent: str) -> tuple[float, float, str]:
    request = OutlookRequest(agent, horizon=LEAD, quantile=SETTINGS.quantile)
    outlook = ModelLoadForecaster(service, refresh=60.0).outlooks({request}, NOW)[request]
    assert outlook.state is ForecastState.READY
    assert outlook.point_peak is not None
    assert outlook.quantile_peak is not None
    return outlook.point_peak, outlook.quantile_peak, outlook.detail


def over_lead(f: AgentForecast) -> tuple[float, float, str]:
    steps = round(LEAD / STEP)
    return (
        max(f.point[:steps]),
        max(f.upper[:steps]),
        f"model {f.model.value} on {f.history} points",
    )


@pytest.mark.parametrize("agent", ["llama", "mistral"])
def test_the_extender_and_the_controller_of_one_process_share_one_forecast(agent: str) -> None:
    prometheus = FakePrometheus()
    service = forecast_service(SETTINGS, client=prometheus)
    # The controller asks first: its lead time makes the fit reach further than the
    # extender's horizon, and the extender then reads that same fit.
    controller = controller_outlook(service, agent)
    extender = extender_forecast(service)[agent]
    assert extender.status is Status.OK
    assert controller == over_lead(extender)
    assert prometheus.range_calls == 2  # the extender reads afresh every refresh


@pytest.mark.parametrize("agent", ["llama", "mistral"])
def test_an_extender_and_a_controller_built_apart_from_one_setting_agree(agent: str) -> None:
    # Two processes (the extender's pod and the controller's), each its own service.
    extender = extender_forecast(forecast_service(SETTINGS, client=FakePrometheus()))[agent]
    controller = controller_outlook(forecast_service(SETTINGS, client=FakePrometheus()), agent)
    assert controller == over_lead(extender)


def test_a_read_is_reused_while_young_and_holding_every_agent_asked_for() -> None:
    prometheus = FakePrometheus()
    service = forecast_service(SETTINGS, client=prometheus)
    first = service.forecast(NOW, max_age=60.0)
    assert service.forecast(NOW + 30, max_age=60.0) is first
    assert prometheus.range_calls == 1
    # An agent the read lacks is looked for again once the grid has a new point.
    service.forecast(NOW + 30, max_age=120.0, agents=["unknown"])
    assert prometheus.range_calls == 1
    service.forecast(NOW + 60, max_age=120.0, agents=["unknown"])
    assert prometheus.range_calls == 2
    service.forecast(NOW + 150, max_age=60.0)
    assert prometheus.range_calls == 3
    # Another quantile: the same read, another fit.
    other = service.forecast(NOW + 150, max_age=60.0, quantile=0.5)
    assert prometheus.range_calls == 3
    assert other.forecasts.settings.quantile == 0.5
    service.close()
    assert prometheus.closed


def test_every_fit_reaches_the_longest_horizon_asked_and_the_configured_seasons() -> None:
    settings = SETTINGS.model_copy(update={"season": (SEASON, 2 * SEASON)})
    service = forecast_service(settings, client=FakePrometheus())
    assert service.forecast(NOW).forecasts.settings.horizon == 15  # the configured 15 min
    assert service.forecast(NOW, horizon=1800.0).forecasts.settings.horizon == 30
    assert service.forecast(NOW).forecasts.settings.horizon == 30
    assert service.plan.season_steps == (120, 240)
