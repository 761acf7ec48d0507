"""What the controller knows about an agent's load when it decides.

The forecasting models and the Prometheus client live elsewhere; the
controller reaches them through ``LoadForecaster`` so the arithmetic can be
tested with plain values and a fake.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ForecastState(StrEnum):
    READY = "Ready"  # a model fitted on enough history
    NO_HISTORY = "NoHistory"  # new agent or short history: trusted to scale up only
    UNAVAILABLE = "Unavailable"  # the source (Prometheus) could not be read


@dataclass(frozen=True, slots=True)
class LoadOutlook:
    """An agent's load now and over ``[now, now + leadTime]``, in requests per second.

    ``point_peak`` and ``quantile_peak`` are the largest point and quantile
    forecasts over the lead time (the look-ahead takes the maximum so that a
    replica started now is ready for the worst moment before it serves).
    Any of them may be unknown.
    """

    state: ForecastState
    observed: float | None = None
    point_peak: float | None = None
    quantile_peak: float | None = None
    generated_at: float | None = None  # when the forecast was made (seconds since the epoch)
    detail: str = ""  # why the forecast is missing, or which model made it

    def __post_init__(self) -> None:
        for name in ("observed", "point_peak", "quantile_peak"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite, non-negative rate, got {value}")


@dataclass(frozen=True, slots=True)
class ForecastStep:
    """One step of a forecast path: the point forecast and its q-quantile at ``at``."""

    at: float  # seconds, on the clock the controller decides with
    point: float
    upper: float


def peaks_within(
    steps: Sequence[ForecastStep], now: float, lead_time: float
) -> tuple[float, float] | None:
    """The largest point and quantile forecasts over ``[now, now + lead_time]``.

    The first step at or after ``now`` always counts, so a lead time shorter
    than the forecast's step still sees the next value. None: no future step.
    """
    future = sorted((s for s in steps if s.at >= now), key=lambda s: s.at)
    if not future:
        return None
    window = [future[0], *(s for s in future[1:] if s.at <= now + lead_time)]
    return max(s.point for s in window), max(s.upper for s in window)


@dataclass(frozen=True, slots=True)
class OutlookRequest:
    """What one autoscaler asks the forecast: its agent, lead time and quantile."""

    agent: str
    horizon: float  # seconds: the lead time
    quantile: float


class LoadForecaster(Protocol):
    """The forecast source as the controller uses it, once per reconcile pass.

    Implementations answer every request and never raise for a source outage:
    they answer ``ForecastState.UNAVAILABLE`` (with the observed rate if they
    still know it). ``now`` is the controller's clock (seconds since the epoch).
    """

    def outlooks(
        self, requests: Collection[OutlookRequest], now: float
    ) -> Mapping[OutlookRequest, LoadOutlook]: ...
