"""The controller's ``LoadForecaster``: request-rate history in, per-agent outlooks out.

History comes from a ``RateSource`` (Prometheus in production) and is
refreshed every ``refresh`` seconds; the forecasting models of
``domain.forecast`` are fitted on it once per refresh and per quantile the
autoscalers ask for. The observed rate is read on every pass, because the
reactive floor is only as quick as that reading.

A failed history read makes every outlook ``UNAVAILABLE`` until a read
succeeds again: the controller must not scale down on an old forecast.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from scheduler_extender.adapters.prometheus.response import (
    agent_of,
    batch_from_matrix,
    instant_rates,
)
from scheduler_extender.adapters.prometheus.source import Querier
from scheduler_extender.domain.autoscaling.outlook import (
    ForecastState,
    ForecastStep,
    LoadOutlook,
    OutlookRequest,
    peaks_within,
)
from scheduler_extender.domain.forecast.forecaster import (
    AgentForecast,
    Forecasts,
    ForecastSettings,
    Status,
    forecast,
)
from scheduler_extender.domain.forecast.series import SeriesBatch

log = logging.getLogger(__name__)


class RateSource(Protocol):
    """Per-agent request rates (requests per second); raises on any failure."""

    def rate_history(
        self, agents: Sequence[str], *, start: float, end: float, step: float
    ) -> SeriesBatch: ...

    def current_rates(self, agents: Sequence[str]) -> Mapping[str, float]: ...


class PrometheusRates:
    """A ``RateSource`` over the Prometheus client the popularity forecast uses.

    The configured PromQL returns every agent's rate; only the agents asked
    for are kept (the query is the user's, so no matcher is spliced into it).
    """

    def __init__(self, client: Querier, *, query: str, agent_label: str) -> None:
        self._client = client
        self._query = query
        self._agent_label = agent_label

    def rate_history(
        self, agents: Sequence[str], *, start: float, end: float, step: float
    ) -> SeriesBatch:
        series = self._client.query_range(self._query, start, end, step)
        wanted = set(agents)
        kept = [s for s in series if agent_of(s.labels, self._agent_label) in wanted]
        return batch_from_matrix(
            kept, agent_label=self._agent_label, step=step, start=start, end=end
        )

    def current_rates(self, agents: Sequence[str]) -> Mapping[str, float]:
        rates = instant_rates(self._client.query(self._query), self._agent_label)
        return {agent: rates[agent] for agent in agents if agent in rates}


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    step: float = 60.0  # seconds between history samples
    season: float = 86400.0  # seconds; the backtest windows scale with it
    history: float = 2 * 86400.0  # seconds read; Holt-Winters needs two seasons
    refresh: float = 60.0  # seconds between history reads and refits

    def __post_init__(self) -> None:
        if not (self.step > 0 and self.season >= 2 * self.step and self.refresh > 0):
            raise ValueError("step and refresh must be positive and season at least two steps")
        if self.history < 2 * self.step:
            raise ValueError("history must span at least two steps")

    def settings(self, horizon: float, quantile: float) -> ForecastSettings:
        # The same windows as the extender's forecast (ForecastSettings.for_step).
        return ForecastSettings.for_step(
            self.step, horizon=horizon, season=self.season, quantile=quantile
        )


@dataclass(frozen=True, slots=True)
class _Fit:
    forecasts: Mapping[str, AgentForecast]
    timestamps: tuple[float, ...]
    horizon: float


class ModelLoadForecaster:
    def __init__(self, source: RateSource, config: ForecastConfig) -> None:
        self._source = source
        self._config = config
        self._lock = threading.Lock()
        self._history: SeriesBatch | None = None
        self._read_at = -math.inf
        self._error = ""
        self._fits: dict[float, _Fit] = {}

    def outlooks(
        self, requests: Collection[OutlookRequest], now: float
    ) -> Mapping[OutlookRequest, LoadOutlook]:
        if not requests:
            return {}
        agents = sorted({r.agent for r in requests})
        with self._lock:
            self._refresh(agents, now)
            observed = self._observed(agents)
            if self._history is not None:
                # One fit per quantile, reaching as far as the longest lead time asks.
                reach: dict[float, float] = {}
                for r in requests:
                    reach[r.quantile] = max(reach.get(r.quantile, 0.0), self._reach(r))
                for quantile, horizon in reach.items():
                    self._fit(quantile, horizon)
            return {r: self._outlook(r, observed.get(r.agent), now) for r in requests}

    def _reach(self, request: OutlookRequest) -> float:
        """The fit is as old as the history read: it must cover the lead time from
        any moment until the next refresh."""
        return request.horizon + self._config.refresh + 2 * self._config.step

    def _refresh(self, agents: list[str], now: float) -> None:
        have = set() if self._history is None else set(self._history.agents)
        if now - self._read_at < self._config.refresh and set(agents) <= have:
            return
        step = self._config.step
        end = math.floor(now / step) * step
        try:
            history = self._source.rate_history(
                agents, start=end - self._config.history, end=end, step=step
            )
        except Exception as exc:
            log.warning("cannot read request-rate history: %s", exc)
            self._history, self._error, self._fits = None, f"history unavailable: {exc}", {}
            self._read_at = -math.inf  # retry on the next pass
            return
        self._history, self._error, self._fits, self._read_at = history, "", {}, now

    def _observed(self, agents: list[str]) -> Mapping[str, float]:
        try:
            rates = self._source.current_rates(agents)
        except Exception as exc:
            log.warning("cannot read current request rates: %s", exc)
            return {}
        return {a: r for a, r in rates.items() if math.isfinite(r) and r >= 0}

    def _outlook(self, request: OutlookRequest, observed: float | None, now: float) -> LoadOutlook:
        if self._history is None:
            return LoadOutlook(ForecastState.UNAVAILABLE, observed=observed, detail=self._error)
        fit = self._fits[request.quantile]
        agent = fit.forecasts.get(request.agent)
        if agent is None or agent.status is Status.GONE:
            return LoadOutlook(
                ForecastState.NO_HISTORY,
                observed=observed,
                detail=f"no request-rate history for agent {request.agent!r}",
            )
        steps = [
            ForecastStep(t, p, u)
            for t, p, u in zip(fit.timestamps, agent.point, agent.upper, strict=True)
        ]
        peaks = peaks_within(steps, now, request.horizon)
        if peaks is None:
            return LoadOutlook(
                ForecastState.UNAVAILABLE, observed=observed, detail="forecast expired"
            )
        state = ForecastState.READY if agent.status is Status.OK else ForecastState.NO_HISTORY
        return LoadOutlook(
            state,
            observed=observed,
            point_peak=max(peaks[0], 0.0),
            quantile_peak=max(peaks[1], 0.0),
            generated_at=self._read_at,
            detail=f"model {agent.model.value} on {agent.history} points",
        )

    def _fit(self, quantile: float, reach: float) -> None:
        cached = self._fits.get(quantile)
        if cached is not None and cached.horizon >= reach:
            return
        assert self._history is not None
        result: Forecasts = forecast(self._history, self._config.settings(reach, quantile))
        self._fits[quantile] = _Fit(result.by_agent(), tuple(result.timestamps()), reach)
