"""The fast correction: trust what is happening now when the forecast is clearly off.

A forecast is refitted every refresh, but a burst or a sudden shift in an
agent's popularity shows up in the current rate first. When the observed
rate departs from the forecast by more than ``factor``, the larger of the two
is used at once. Only an upward departure changes anything, then: a
forecast far above the current rate is kept, because under-estimating a hot
agent makes a straggler while over-estimating a cooling one only spreads it
a little more than needed (the asymmetry of AWS predictive scaling and of
Crane's max-of-prediction-and-metric).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType


def corrected_rate(forecast: float, observed: float | None, factor: float) -> float:
    """The rate to place by, given the forecast and the current observation."""
    if observed is None or not math.isfinite(observed):
        return forecast
    return observed if observed > forecast * factor else forecast


def corrected_rates(
    forecasts: Mapping[str, float], observed: Mapping[str, float], factor: float
) -> Mapping[str, float]:
    """``corrected_rate`` for every agent; agents only observed (no forecast yet) are
    taken at their observed rate."""
    rates = {
        agent: corrected_rate(rate, observed.get(agent), factor)
        for agent, rate in forecasts.items()
    }
    for agent, rate in observed.items():
        if agent not in rates and math.isfinite(rate) and rate > 0:
            rates[agent] = rate
    return MappingProxyType(rates)
