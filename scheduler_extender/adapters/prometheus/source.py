"""The Prometheus-fed popularity source: a background loop the request path never waits on.

Every ``refresh_interval`` the loop runs the configured range query over the
history window, fits and backtests every agent (``domain.forecast``) and
publishes an immutable ``Popularity``: per agent, the peak of the point
forecast over the horizon (looking ahead, as Crane does, rather than at
the next minute only). Every ``correction_interval`` it runs the same query
as an instant query and applies the correction rule (``domain.forecast.
correction``), so a burst moves placement within seconds, not at the next
refit.

``current()`` only reads a reference. When Prometheus is slow or down the
last good forecast is served until it is ``max_age`` old, then popularity
turns neutral (the popularity policy has no opinion): scheduling never
fails because of Prometheus.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from scheduler_extender.adapters.prometheus.client import PrometheusError
from scheduler_extender.adapters.prometheus.metrics import ForecastMetrics
from scheduler_extender.adapters.prometheus.response import (
    InstantSample,
    RangeSeries,
    batch_from_matrix,
    instant_rates,
)
from scheduler_extender.domain.forecast.correction import corrected_rates
from scheduler_extender.domain.forecast.forecaster import Forecasts, ForecastSettings, forecast
from scheduler_extender.domain.popularity import NEUTRAL, Popularity

log = logging.getLogger(__name__)

SOURCE = "prometheus"


class Querier(Protocol):
    """The part of ``PrometheusClient`` the loop uses."""

    def query(self, promql: str, at: float | None = None) -> list[InstantSample]: ...
    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[RangeSeries]: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """What to query and how to forecast; durations in seconds."""

    query: str
    agent_label: str = "agent"
    refresh_interval: float = 30.0
    correction_interval: float = 10.0
    history: float = 2 * 86400.0
    step: float = 60.0
    max_age: float = 600.0
    horizon: float = 900.0
    season: float = 86400.0
    quantile: float = 0.9
    correction_factor: float = 2.0

    def forecast_settings(self) -> ForecastSettings:
        return ForecastSettings.for_step(
            self.step, horizon=self.horizon, season=self.season, quantile=self.quantile
        )


@dataclass(frozen=True, slots=True)
class _Published:
    forecasts: Forecasts
    peaks: Mapping[str, float]  # forecast rate per agent, before correction
    popularity: Popularity  # what scoring reads: peaks corrected by observed rates
    fitted_at: float  # monotonic time of the refresh
    corrected: int = 0  # agents whose observed rate replaced the forecast


@dataclass(slots=True)
class _Health:
    up: bool = False
    last_error: str | None = None
    consecutive_failures: int = 0
    last_refresh_unix: float | None = None
    last_refresh_seconds: float | None = None


@dataclass
class PrometheusPopularity:
    """A ``PopularitySource`` backed by Prometheus; thread-safe for readers."""

    client: Querier
    settings: LoopSettings
    metrics: ForecastMetrics | None = None
    url: str = ""  # for status only
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    # Set by stop(); give the client its ``wait`` as retry sleep so that
    # shutdown does not wait out a backoff.
    stop_event: threading.Event = field(default_factory=threading.Event)
    _published: _Published | None = field(default=None, init=False)
    _health: _Health = field(default_factory=_Health, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if self.metrics is not None:
            self.metrics.watch_age(self.age, self.stale)

    # -- the request path ----------------------------------------------------
    def current(self) -> Popularity:
        published = self._published
        if published is None or self.monotonic() - published.fitted_at > self.settings.max_age:
            return NEUTRAL
        return published.popularity

    def age(self) -> float | None:
        published = self._published
        return None if published is None else self.monotonic() - published.fitted_at

    def stale(self) -> bool:
        age = self.age()
        return age is None or age > self.settings.max_age

    def latest(self) -> Forecasts | None:
        """The last good forecasts, however old (for inspection)."""
        published = self._published
        return None if published is None else published.forecasts

    def status(self) -> dict[str, Any]:
        """Readiness details: informational, Prometheus never makes the service unready."""
        published = self._published
        health = self._health
        age = self.age()
        return {
            "source": SOURCE,
            "url": self.url,
            "up": health.up,
            "forecast_age_seconds": None if age is None else round(age, 3),
            "stale": self.stale(),
            "agents": 0 if published is None else len(published.peaks),
            "corrected_agents": 0 if published is None else published.corrected,
            "consecutive_failures": health.consecutive_failures,
            "last_error": health.last_error,
            "last_refresh_unix": health.last_refresh_unix,
            "last_refresh_seconds": health.last_refresh_seconds,
        }

    # -- the loop ------------------------------------------------------------
    def refresh(self) -> bool:
        """Query history, refit every agent, publish. False (and the old forecast
        kept) when Prometheus fails."""
        started = self.monotonic()
        step = self.settings.step
        end = math.floor(self.wall() / step) * step  # a stable grid between refreshes
        try:
            series = self.client.query_range(
                self.settings.query, end - self.settings.history, end, step
            )
        except PrometheusError as exc:
            self._query_failed("range", exc)
            return False
        self._queried("range")
        batch = batch_from_matrix(
            series,
            agent_label=self.settings.agent_label,
            step=step,
            start=end - self.settings.history,
            end=end,
        )
        forecasts = forecast(batch, self.settings.forecast_settings())
        peaks = MappingProxyType({f.agent: f.peak for f in forecasts})
        with self._lock:
            self._published = _Published(
                forecasts, peaks, Popularity(peaks, source=SOURCE), self.monotonic()
            )
        elapsed = self.monotonic() - started
        self._health.last_refresh_unix = end
        self._health.last_refresh_seconds = round(elapsed, 3)
        if self.metrics is not None:
            self.metrics.refreshes.labels("ok").inc()
            self.metrics.last_success.set(end)
            self.metrics.refresh_duration.observe(elapsed)
            self.metrics.record_forecasts(forecasts, peaks)
        if not forecasts.agents:
            log.warning(
                "the popularity query returned no series over the last %.0fs: every agent "
                "scores neutrally (query: %s)",
                self.settings.history,
                self.settings.query,
            )
        log.debug(
            "forecast refreshed: %d agents, %d points each, in %.3fs",
            len(forecasts.agents),
            batch.points,
            elapsed,
        )
        self.correct()
        return True

    def correct(self) -> bool:
        """Apply the correction rule with the current rates. False when Prometheus
        fails or there is no forecast to correct."""
        published = self._published
        if published is None:
            return False
        try:
            samples = self.client.query(self.settings.query)
        except PrometheusError as exc:
            self._query_failed("instant", exc)
            return False
        self._queried("instant")
        observed = instant_rates(samples, self.settings.agent_label)
        with self._lock:
            latest = self._published
            if latest is None:
                return False
            rates = corrected_rates(latest.peaks, observed, self.settings.correction_factor)
            corrected = sum(1 for agent, rate in rates.items() if rate != latest.peaks.get(agent))
            self._published = _Published(
                latest.forecasts,
                latest.peaks,
                Popularity(rates, source=SOURCE),
                latest.fitted_at,
                corrected,
            )
        if self.metrics is not None:
            self.metrics.corrected_agents.set(corrected)
            self.metrics.record_forecasts(latest.forecasts, rates)
        if corrected:
            log.debug("observed rates replace the forecast of %d agent(s)", corrected)
        return True

    def start(self) -> None:
        if self._thread is not None:
            return
        self.stop_event.clear()
        self._thread = threading.Thread(target=self._run, name="popularity-forecast", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the loop and close the client; the last forecast stays readable."""
        self.stop_event.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self.client.close()

    def _run(self) -> None:
        next_refresh = self.monotonic()
        while not self.stop_event.is_set():
            try:
                if self.monotonic() >= next_refresh:
                    next_refresh = self.monotonic() + self.settings.refresh_interval
                    self.refresh()
                else:
                    self.correct()
            except Exception as exc:  # a bug must not end the loop: keep the last forecast
                log.exception("popularity forecast loop failed; keeping the last forecast")
                self._fit_failed(exc)
            wait = min(self.settings.correction_interval, next_refresh - self.monotonic())
            self.stop_event.wait(max(wait, 0.0))

    def _queried(self, kind: str) -> None:
        health = self._health
        health.up = True
        health.last_error = None
        health.consecutive_failures = 0
        if self.metrics is not None:
            self.metrics.source_up.set(1)
            self.metrics.queries.labels(kind, "ok").inc()

    def _query_failed(self, kind: str, exc: Exception) -> None:
        health = self._health
        health.up = False
        health.last_error = f"{kind} query: {exc}"
        health.consecutive_failures += 1
        if self.metrics is not None:
            self.metrics.source_up.set(0)
            self.metrics.queries.labels(kind, "error").inc()
            if kind == "range":
                self.metrics.refreshes.labels("error").inc()
        log.warning(
            "Prometheus %s query failed (%d failures in a row); serving the last forecast "
            "until it is %.0fs old: %s",
            kind,
            health.consecutive_failures,
            self.settings.max_age,
            exc,
        )

    def _fit_failed(self, exc: Exception) -> None:
        """Prometheus answered but the forecast could not be built (logged by the caller)."""
        self._health.last_error = f"fit: {exc}"
        self._health.consecutive_failures += 1
        if self.metrics is not None:
            self.metrics.refreshes.labels("error").inc()
