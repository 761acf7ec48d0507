"""The Prometheus-fed popularity source: a background loop the request path never waits on.

Every ``refresh_interval`` the loop asks the forecast service
(``forecasting.py``, the one the AgentAutoscaler controller uses too) for a
fresh forecast of every agent and publishes an immutable ``Popularity``: per
agent, the peak of the point forecast over the horizon (looking ahead, as
Crane does, rather than at the next minute only). Every
``correction_interval`` it reads the current rates (the same query, instant)
and applies the correction rule (``domain.forecast.
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
from typing import Any

from scheduler_extender.adapters.prometheus.client import PrometheusError
from scheduler_extender.adapters.prometheus.forecasting import ForecastService
from scheduler_extender.adapters.prometheus.metrics import ForecastMetrics
from scheduler_extender.domain.forecast.correction import corrected_rates
from scheduler_extender.domain.forecast.forecaster import Forecasts
from scheduler_extender.domain.popularity import NEUTRAL, Popularity

log = logging.getLogger(__name__)

SOURCE = "prometheus"


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """When to refresh and correct; seconds. Built from ``PrometheusSettings`` (its defaults)."""

    refresh_interval: float
    correction_interval: float
    max_age: float  # then popularity turns neutral
    horizon: float  # placement reads the peak of the point forecast over it
    correction_factor: float


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

    service: ForecastService
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
        """Read history, refit every agent, publish. False (and the old forecast
        kept) when Prometheus fails."""
        started = self.monotonic()
        try:
            fit = self.service.forecast(self.wall(), horizon=self.settings.horizon)
        except PrometheusError as exc:
            self._query_failed("range", exc)
            return False
        self._queried("range")
        forecasts = fit.forecasts
        end = forecasts.end
        # The service's fit may reach further (the controller's lead times): the
        # placement rate is the peak over this loop's own horizon.
        steps = max(1, math.ceil(self.settings.horizon / forecasts.step - 1e-9))
        peaks = MappingProxyType({f.agent: max(f.point[:steps], default=0.0) for f in forecasts})
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
                "scores neutrally",
                self.service.plan.history,
            )
        log.debug(
            "forecast refreshed: %d agents, %d points each, in %.3fs",
            len(forecasts.agents),
            forecasts.points,
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
            observed = self.service.current_rates()
        except PrometheusError as exc:
            self._query_failed("instant", exc)
            return False
        self._queried("instant")
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
        """Stop the loop and close the service's client; the last forecast stays readable."""
        self.stop_event.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        self.service.close()

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
