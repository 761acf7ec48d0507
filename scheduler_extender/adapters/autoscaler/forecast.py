"""The controller's ``LoadForecaster``: per-agent outlooks from the one forecast service.

The forecast itself (history query, model per agent, backtest, upper
quantile) is ``adapters/prometheus/forecasting.ForecastService``, the one the
extender's popularity loop uses, so the controller and the extender agree
about every agent. History is read again once the last read is ``refresh``
seconds old, or when an autoscaler names an agent it did not hold and the
grid has a newer point (see ``ForecastService.forecast``). The
observed rate is read on every pass, because the reactive floor is only as
quick as that reading.

A failed history read makes every outlook ``UNAVAILABLE`` until a read
succeeds again: the controller must not scale down on an old forecast.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from scheduler_extender.adapters.prometheus.forecasting import ForecastService
from scheduler_extender.domain.autoscaling.outlook import (
    ForecastState,
    ForecastStep,
    LoadOutlook,
    OutlookRequest,
    peaks_within,
)
from scheduler_extender.domain.forecast.forecaster import AgentForecast, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Fit:
    forecasts: Mapping[str, AgentForecast]
    timestamps: tuple[float, ...]
    generated_at: float  # unix seconds of the refresh that read the history


class ModelLoadForecaster:
    def __init__(self, service: ForecastService, *, refresh: float) -> None:
        if not refresh > 0:
            raise ValueError("refresh must be positive")
        self._service = service
        self._refresh = refresh
        self._lock = threading.Lock()
        self._error = ""
        self._fits: dict[float, _Fit] | None = None  # by quantile; None: history unavailable

    def outlooks(
        self, requests: Collection[OutlookRequest], now: float
    ) -> Mapping[OutlookRequest, LoadOutlook]:
        if not requests:
            return {}
        agents = sorted({r.agent for r in requests})
        with self._lock:
            # One fit per quantile, reaching as far as the longest lead time asks.
            reach: dict[float, float] = {}
            for r in requests:
                reach[r.quantile] = max(reach.get(r.quantile, 0.0), self._reach(r))
            self._fits = {}
            for quantile, horizon in sorted(reach.items()):
                try:
                    fit = self._service.forecast(
                        now, horizon=horizon, quantile=quantile, max_age=self._refresh,
                        agents=agents,
                    )  # fmt: skip
                except Exception as exc:
                    log.warning("cannot read request-rate history: %s", exc)
                    self._fits, self._error = None, f"history unavailable: {exc}"
                    break
                self._fits[quantile] = _Fit(
                    fit.forecasts.by_agent(), tuple(fit.forecasts.timestamps()), fit.read_at
                )
            observed = self._observed(agents)
            return {r: self._outlook(r, observed.get(r.agent), now) for r in requests}

    def _reach(self, request: OutlookRequest) -> float:
        """The fit is as old as the history read: it must cover the lead time from
        any moment until the next refresh."""
        return request.horizon + self._refresh + 2 * self._service.plan.step

    def _observed(self, agents: list[str]) -> Mapping[str, float]:
        try:
            rates = self._service.current_rates()
        except Exception as exc:
            log.warning("cannot read current request rates: %s", exc)
            return {}
        return {
            a: rates[a] for a in agents if a in rates and math.isfinite(rates[a]) and rates[a] >= 0
        }

    def _outlook(self, request: OutlookRequest, observed: float | None, now: float) -> LoadOutlook:
        if self._fits is None:
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
            generated_at=fit.generated_at,
            detail=f"model {agent.model.value} on {agent.history} points",
        )
