"""How many replicas an agent should run, decided one autoscaler at a time.

    desired = clamp(max(ceil(peak_q / target * (1 + headroom)), ceil(observed / target)),
                    minReplicas, maxReplicas)

``peak_q`` is the largest q-quantile forecast over ``[now, now + leadTime]``:
the prediction pre-allocates replicas that need ``leadTime`` to start, and
the reactive term corrects at once when reality runs hotter than the forecast
(the shape of Crane EHPA, AWS predictive scaling and Alibaba AHPA).

The behaviour around that formula follows the HPA and AWS rules:

- a higher count is applied at once;
- a lower count only when every recommendation of the last stabilisation
  window allows it, and never below what the observed rate needs with the
  headroom (the observed rate must be low too, not only the forecast);
- a lower count within the tolerance of the current one is ignored (a higher
  one never is: one replica short is SLO-violation time);
- no trusted forecast (new agent, short history), no observed rate or no
  Prometheus: never scale down, scale up on whatever is known;
- a controller that has just started treats the current count as
  recommended at that moment, so nothing scales down before one full window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from scheduler_extender.domain.autoscaling.conditions import Condition, ConditionType
from scheduler_extender.domain.autoscaling.outlook import ForecastState, LoadOutlook
from scheduler_extender.domain.autoscaling.policy import ScalingPolicy

# Rates and targets are floats: 3 * 0.1 / 0.1 must give 3 replicas, not 4.
_EPSILON = 1e-9


class Reason(StrEnum):
    """Why a decision has the count it has (a bounded metric label and Event reason)."""

    FORECAST = "forecast"  # the forecast over the lead time set the count
    REACTIVE = "reactive"  # the observed rate set it: reality ran hotter than the forecast
    STABILISED = "stabilised"  # a lower count was held back or applied after the window
    LIMITED = "limited"  # minReplicas, maxReplicas or the GPU budget set it
    TOLERANCE = "tolerance"  # the load fell less than the tolerance: unchanged
    NO_SIGNAL = "no-signal"  # neither a forecast nor an observed rate: unchanged


@dataclass(frozen=True, slots=True)
class ScalingMemory:
    """The recommendations one controller made for one autoscaler, oldest first."""

    recommendations: tuple[tuple[float, int], ...]

    @classmethod
    def start(cls, now: float, current: int) -> ScalingMemory:
        """A controller with no history acts as if it had recommended the current count."""
        return cls(((now, current),))

    def remember(self, now: float, recommendation: int, window: float) -> ScalingMemory:
        kept = tuple((t, r) for t, r in self.recommendations if now - t < window)
        return ScalingMemory((*kept, (now, recommendation)))

    def peak(self) -> int:
        return max(r for _, r in self.recommendations)


@dataclass(frozen=True, slots=True)
class Decision:
    """The count to run and why; ``replicas == current`` means no scale action."""

    current: int
    replicas: int
    reason: Reason
    message: str
    recommendation: int | None  # before stabilisation and bounds; None: no signal
    forecast_replicas: int | None  # what the forecast term alone asks for
    reactive_replicas: int | None  # what the observed rate alone asks for
    demand: float | None  # the load in replicas' worth (before rounding), for the budget
    conditions: tuple[Condition, ...]

    @property
    def direction(self) -> str:
        if self.replicas > self.current:
            return "up"
        return "down" if self.replicas < self.current else "none"

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def limited_to(self, replicas: int, why: str) -> Decision:
        """This decision cut to ``replicas`` by a shared budget."""
        limited = Condition(ConditionType.SCALING_LIMITED, True, "GPUBudget", why)
        others = tuple(c for c in self.conditions if c.type != ConditionType.SCALING_LIMITED)
        return replace(
            self,
            replicas=replicas,
            reason=Reason.LIMITED,
            message=f"{why}: {replicas} replicas instead of {self.replicas}",
            conditions=(*others, limited),
        )


def replicas_for(rate: float, target: float) -> int:
    """Replicas needed to serve ``rate`` at ``target`` each, rounded up."""
    return max(math.ceil(rate / target - _EPSILON), 0)


def recommend(demand: float, current: int, tolerance: float) -> tuple[int, bool]:
    """The count for ``demand`` (in replicas' worth) and whether the tolerance kept ``current``.

    The tolerance damps scale-downs only. A count that cannot serve the demand
    is raised as soon as one more replica is needed: the HPA's symmetric
    tolerance leaves a target up to 10 % short for as long as the load sits
    in the band, which is SLO-violation time (benchmarks/bench_autoscale.py).
    Scale-ups cannot flap: going back down takes a whole stabilisation window
    and a drop larger than the tolerance.
    """
    needed = replicas_for(demand, 1.0)
    if needed < current and demand >= current * (1 - tolerance):
        return current, True
    return needed, False


def decide(
    policy: ScalingPolicy,
    current: int,
    outlook: LoadOutlook,
    memory: ScalingMemory,
    now: float,
) -> tuple[Decision, ScalingMemory]:
    """Decide the count for one autoscaler; returns the decision and the updated memory."""
    target = policy.target_per_replica
    forecast_need: float | None = None
    if outlook.state is not ForecastState.UNAVAILABLE and outlook.quantile_peak is not None:
        forecast_need = outlook.quantile_peak * (1 + policy.headroom) / target
    reactive_need = None if outlook.observed is None else outlook.observed / target
    known = [need for need in (forecast_need, reactive_need) if need is not None]
    demand = max(known) if known else None

    recommendation: int | None = None
    within_tolerance = False
    if demand is not None:
        recommendation, within_tolerance = recommend(demand, current, policy.tolerance)

    blind = _why_blind(outlook, forecast_need)
    remembered = current if recommendation is None else recommendation
    if blind is not None:
        # Blind passes count as "keep what runs": after an outage or a cold
        # start the window must fill with trusted recommendations again.
        remembered = max(remembered, current)
    memory = memory.remember(now, remembered, policy.stabilization_window)

    if recommendation is None:
        proposal, reason = current, Reason.NO_SIGNAL
        message = f"neither a forecast nor an observed rate: holding {current} replicas"
    elif within_tolerance:
        proposal, reason = current, Reason.TOLERANCE
        message = (
            f"load of {demand:.2f} replicas is within {policy.tolerance:.0%} below {current}: "
            "unchanged"
        )
    elif recommendation >= current:
        proposal = recommendation
        reason, message = _upward(policy, outlook, forecast_need, reactive_need, recommendation)
    else:
        proposal, message = _downward(policy, current, outlook, memory, blind, recommendation)
        reason = Reason.STABILISED

    desired = min(max(proposal, policy.min_replicas), policy.max_replicas)
    if desired != proposal:
        bound = "maxReplicas" if desired < proposal else "minReplicas"
        message = f"{message}; limited to {bound} {desired}"
        reason = Reason.LIMITED
    conditions = (
        _forecast_condition(policy, outlook, forecast_need),
        _limited_condition(desired, proposal),
    )
    decision = Decision(
        current=current,
        replicas=desired,
        reason=reason,
        message=message,
        recommendation=recommendation,
        forecast_replicas=None if forecast_need is None else replicas_for(forecast_need, 1.0),
        reactive_replicas=None if reactive_need is None else replicas_for(reactive_need, 1.0),
        demand=demand,
        conditions=conditions,
    )
    return decision, memory


def _why_blind(outlook: LoadOutlook, forecast_need: float | None) -> str | None:
    """Why a lower count must not be trusted now, or None when it may be."""
    if outlook.state is ForecastState.UNAVAILABLE:
        return "forecast unavailable: never scaling down blind"
    if outlook.state is ForecastState.NO_HISTORY or forecast_need is None:
        return "no forecast history for this agent yet: not scaling down"
    if outlook.observed is None:
        return "observed rate unknown: not scaling down on the forecast alone"
    return None


def _upward(
    policy: ScalingPolicy,
    outlook: LoadOutlook,
    forecast_need: float | None,
    reactive_need: float | None,
    recommendation: int,
) -> tuple[Reason, str]:
    forecast_count = None if forecast_need is None else replicas_for(forecast_need, 1.0)
    reactive_count = None if reactive_need is None else replicas_for(reactive_need, 1.0)
    # A tie goes to the forecast: the prediction had already asked for the count.
    if forecast_count is not None and (reactive_count is None or forecast_count >= reactive_count):
        return Reason.FORECAST, (
            f"q{policy.quantile:g} forecast peaks at {outlook.quantile_peak:.2f} req/s within "
            f"{policy.lead_time:g}s: {recommendation} replicas with {policy.headroom:.0%} headroom"
        )
    return Reason.REACTIVE, (
        f"observed {outlook.observed:.2f} req/s needs {recommendation} replicas"
        + ("" if forecast_count is None else f", more than the forecast's {forecast_count}")
    )


def _downward(
    policy: ScalingPolicy,
    current: int,
    outlook: LoadOutlook,
    memory: ScalingMemory,
    blind: str | None,
    recommendation: int,
) -> tuple[int, str]:
    if blind is not None:
        return current, f"holding {current} replicas: {blind}"
    assert outlook.observed is not None  # not blind
    window_peak = memory.peak()
    observed_floor = replicas_for(
        outlook.observed * (1 + policy.headroom), policy.target_per_replica
    )
    proposal = min(current, max(recommendation, window_peak, observed_floor))
    if proposal == current:
        if observed_floor >= current:
            why = (
                f"observed {outlook.observed:.2f} req/s still needs {observed_floor} with headroom"
            )
        else:
            why = f"recommendations over the last {policy.stabilization_window:g}s peak at {window_peak}"
        return current, f"holding {current} replicas (forecast asks {recommendation}): {why}"
    return proposal, (
        f"scaling down to {proposal}: every recommendation of the last "
        f"{policy.stabilization_window:g}s and the observed {outlook.observed:.2f} req/s allow it"
    )


def _forecast_condition(
    policy: ScalingPolicy, outlook: LoadOutlook, forecast_need: float | None
) -> Condition:
    kind = ConditionType.FORECAST_AVAILABLE
    if outlook.state is ForecastState.UNAVAILABLE:
        return Condition(kind, False, "SourceUnavailable", outlook.detail)
    if forecast_need is None:
        return Condition(kind, False, "NoHistory", outlook.detail or "no forecast for this agent")
    peak = (
        f"q{policy.quantile:g} peak {outlook.quantile_peak:.2f} req/s within {policy.lead_time:g}s"
    )
    if outlook.state is ForecastState.NO_HISTORY:
        return Condition(kind, True, "ShortHistory", f"{peak}; used to scale up only")
    return Condition(kind, True, "ForecastReady", peak)


def _limited_condition(desired: int, proposal: int) -> Condition:
    kind = ConditionType.SCALING_LIMITED
    if desired < proposal:
        return Condition(kind, True, "TooManyReplicas", f"{proposal} wanted, maxReplicas {desired}")
    if desired > proposal:
        return Condition(kind, True, "TooFewReplicas", f"{proposal} wanted, minReplicas {desired}")
    return Condition(kind, False, "DesiredWithinRange", "the desired count is within the bounds")
