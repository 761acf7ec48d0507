"""The one forecast service: request-rate history from Prometheus in, per-agent forecasts out.

Both consumers of a forecast go through it: the extender's popularity loop
(``source.py``) and the AgentAutoscaler controller (``adapters/autoscaler/
forecast.py``). So they read the same query over the same grid (paged by the
client), fit the same model per agent with the same backtest, seasons and
upper quantile, and cannot disagree about one agent. ``wiring.forecast_service``
builds it from ``PrometheusSettings``, the only place its parameters have
defaults.

Within one process a service is shared and keeps the last history read: a
consumer that accepts a read up to ``max_age`` old reuses the other's read and
fit. Fits are cached per quantile; every fit reaches the longest horizon any
consumer has asked so far (model choice depends on the horizon it is scored
over, so two horizons could pick two models for one agent).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from scheduler_extender.adapters.prometheus.response import (
    InstantSample,
    RangeSeries,
    batch_from_matrix,
    instant_rates,
)
from scheduler_extender.domain.forecast.forecaster import (
    Forecasts,
    ForecastSettings,
    forecast_seasons,
)
from scheduler_extender.domain.forecast.series import SeriesBatch


class Querier(Protocol):
    """The part of ``PrometheusClient`` the forecast uses."""

    def query(self, promql: str, at: float | None = None) -> list[InstantSample]: ...
    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[RangeSeries]: ...
    def close(self) -> None: ...


class RateSource(Protocol):
    """Per-agent request rates (requests per second) of every agent; raises on any failure."""

    def rate_history(self, *, start: float, end: float, step: float) -> SeriesBatch: ...
    def current_rates(self) -> Mapping[str, float]: ...
    def close(self) -> None: ...


class PrometheusRates:
    """A ``RateSource`` over one PromQL query that returns every agent's rate."""

    def __init__(self, client: Querier, *, query: str, agent_label: str) -> None:
        self.client = client
        self.query = query
        self.agent_label = agent_label

    def rate_history(self, *, start: float, end: float, step: float) -> SeriesBatch:
        series = self.client.query_range(self.query, start, end, step)
        return batch_from_matrix(
            series, agent_label=self.agent_label, step=step, start=start, end=end
        )

    def current_rates(self) -> Mapping[str, float]:
        return instant_rates(self.client.query(self.query), self.agent_label)

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True, slots=True)
class ForecastPlan:
    """What every forecast reads and fits; durations in seconds (no defaults: see wiring)."""

    step: float
    history: float
    seasons: tuple[float, ...]  # each agent gets the one whose backtest is best
    horizon: float  # the shortest horizon fitted
    quantile: float  # the upper bound consumers get unless they ask for another

    def __post_init__(self) -> None:
        if not (self.step > 0 and self.history >= 2 * self.step and self.horizon >= self.step):
            raise ValueError("step must be positive, history two steps and horizon one step")
        if not self.seasons or min(self.seasons) < 2 * self.step:
            raise ValueError("need at least one season, each at least two steps")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError("quantile must be between 0 and 1")

    def settings(self, horizon: float, quantile: float) -> ForecastSettings:
        return ForecastSettings.for_step(
            self.step, horizon=horizon, season=self.seasons[0], quantile=quantile
        )

    @property
    def season_steps(self) -> tuple[int, ...]:
        return tuple(max(2, round(s / self.step)) for s in self.seasons)


@dataclass(frozen=True, slots=True)
class Fit:
    """One forecast of every agent, and when its history was read."""

    forecasts: Forecasts
    read_at: float  # unix seconds when the history was read (the caller's ``now``)
    horizon: float  # seconds the forecasts reach


@dataclass(slots=True)
class _Read:
    batch: SeriesBatch
    at: float  # unix seconds, the caller's ``now``
    fits: dict[float, Fit] = field(default_factory=dict)  # by quantile


class ForecastService:
    """Query, batch and forecast every agent; thread-safe, shared by all consumers."""

    def __init__(self, source: RateSource, plan: ForecastPlan) -> None:
        self.source = source
        self.plan = plan
        self._lock = threading.Lock()
        self._read: _Read | None = None
        self._reach = plan.horizon

    def forecast(
        self,
        now: float,
        *,
        horizon: float | None = None,
        quantile: float | None = None,
        max_age: float = 0.0,
        agents: Collection[str] = (),
    ) -> Fit:
        """Forecasts of every agent from the grid point at or before ``now`` (unix seconds).

        The last history read is reused when it is less than ``max_age``
        seconds old and holds every one of ``agents``, or lacks some but the
        grid has no newer point yet (an agent without traffic, asked for on
        every pass, costs one read per step, not one per pass); otherwise
        history is read again. Raises what the source raises, and then
        forgets the last read (no consumer gets a forecast from an old read by
        accident).
        """
        wanted_quantile = self.plan.quantile if quantile is None else quantile
        step = self.plan.step
        end = math.floor(now / step) * step  # a stable grid between reads
        with self._lock:
            self._reach = max(self._reach, horizon or 0.0)
            read = self._read
            if (
                read is None
                or not 0.0 <= now - read.at < max_age
                or (not set(agents) <= set(read.batch.agents) and end > read.batch.end)
            ):
                read = self._read = None
                batch = self.source.rate_history(start=end - self.plan.history, end=end, step=step)
                read = self._read = _Read(batch, now)
            fit = read.fits.get(wanted_quantile)
            if fit is None or fit.horizon < self._reach:
                forecasts = forecast_seasons(
                    read.batch,
                    self.plan.settings(self._reach, wanted_quantile),
                    self.plan.season_steps,
                )
                fit = read.fits[wanted_quantile] = Fit(forecasts, read.at, self._reach)
            return fit

    def current_rates(self) -> Mapping[str, float]:
        """Every agent's rate now; raises what the source raises."""
        return self.source.current_rates()

    def close(self) -> None:
        self.source.close()
