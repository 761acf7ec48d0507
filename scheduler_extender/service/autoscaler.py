"""The AgentAutoscaler controller: one reconcile pass over every object, on a timer and on change.

A pass reads every AgentAutoscaler and its target's ``scale``, asks the
forecaster for every agent at once, lets ``domain.autoscaling`` decide each
count, shares any GPU budget, then writes ``scale`` (mode ``Auto`` only),
records an Event per scale action and updates ``status``. The stabilisation
memory lives in this process: a new leader starts with none, so it never
scales down before one full window (the cold-start rule).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scheduler_extender.adapters.autoscaler.metrics import AutoscalerMetrics
from scheduler_extender.domain.autoscaling.budget import Contender, enforce
from scheduler_extender.domain.autoscaling.conditions import Condition, ConditionType
from scheduler_extender.domain.autoscaling.objects import (
    Autoscaler,
    AutoscalerStatus,
    ForecastSummary,
    Scale,
    transition,
)
from scheduler_extender.domain.autoscaling.outlook import (
    ForecastState,
    LoadForecaster,
    LoadOutlook,
    OutlookRequest,
)
from scheduler_extender.domain.autoscaling.policy import Mode
from scheduler_extender.domain.autoscaling.ports import (
    AutoscalerStore,
    ConflictFinder,
    EventRecorder,
    ScaleClient,
    TargetError,
)
from scheduler_extender.domain.autoscaling.replicas import Decision, ScalingMemory, decide

log = logging.getLogger(__name__)

ABLE = ConditionType.ABLE_TO_SCALE
CONFLICT = ConditionType.CONFLICTING_AUTOSCALER
# Changes arriving in a burst (kubectl apply of many objects) share one pass.
MIN_PASS_GAP = 1.0


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """GPU budgets shared by the autoscalers of a namespace, and of the whole cluster."""

    cluster: int | None = None
    namespaces: Mapping[str, int] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.cluster is not None or bool(self.namespaces)


@dataclass
class _Plan:
    """What one pass learned and decided about one AgentAutoscaler."""

    autoscaler: Autoscaler
    scale: Scale | None = None
    able: Condition | None = None  # set when something stops the controller from acting
    conflict: Condition | None = None
    outlook: LoadOutlook | None = None
    decision: Decision | None = None

    @property
    def actionable(self) -> bool:
        return self.able is None and self.decision is not None


class AutoscalerController:
    def __init__(
        self,
        *,
        store: AutoscalerStore,
        scales: ScaleClient,
        conflicts: ConflictFinder,
        events: EventRecorder,
        forecaster: LoadForecaster,
        metrics: AutoscalerMetrics,
        budgets: BudgetConfig | None = None,
        clock: Callable[[], float] = time.time,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store = store
        self._scales = scales
        self._conflicts = conflicts
        self._events = events
        self._forecaster = forecaster
        self._metrics = metrics
        self._budgets = budgets or BudgetConfig()
        self._clock = clock
        self._may_act = may_act
        self._memory: dict[str, ScalingMemory] = {}
        self._kick = threading.Event()
        self.last_pass: float | None = None  # clock() at the end of the last pass

    # -- the loop -------------------------------------------------------------------
    def kick(self) -> None:
        """Ask for a pass now (an AgentAutoscaler changed)."""
        self._kick.set()

    def run(self, stop: threading.Event, interval: float) -> None:
        """Reconcile every ``interval`` seconds and on ``kick`` until ``stop`` is set."""
        self._memory.clear()  # a new term: whatever an earlier term remembered is stale
        may_act = self._may_act
        self._may_act = lambda: may_act() and not stop.is_set()
        try:
            while not stop.is_set():
                started = time.monotonic()
                self._kick.clear()
                self.reconcile_safely()
                next_pass = started + interval
                earliest = started + MIN_PASS_GAP
                while not stop.is_set():
                    now = time.monotonic()
                    if now >= next_pass or (self._kick.is_set() and now >= earliest):
                        break
                    stop.wait(min(0.2, max(next_pass - now, 0.0)))
        finally:
            self._may_act = may_act

    def reconcile_safely(self) -> None:
        with self._metrics.reconcile_duration.time():
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile pass failed")
                self._metrics.reconcile_errors.labels("pass").inc()
        self.last_pass = self._clock()

    # -- one pass -------------------------------------------------------------------
    def reconcile(self) -> None:
        now = self._clock()
        autoscalers = self._store.list_autoscalers()
        plans = [self._observe(a) for a in autoscalers]
        self._flag_shared_targets(plans)
        self._forecast(plans, now)
        for plan in plans:
            self._decide(plan, now)
        if self._budgets.enabled:
            self._share_budgets(plans)
        for plan in plans:
            self._act(plan, now)
        alive = {a.uid for a in autoscalers}
        for uid in set(self._memory) - alive:
            del self._memory[uid]
        self._metrics.forget_all_but(alive)

    def _observe(self, autoscaler: Autoscaler) -> _Plan:
        plan = _Plan(autoscaler)
        if autoscaler.policy is None:
            plan.able = Condition(ABLE, False, "InvalidSpec", autoscaler.problem)
            return plan
        namespace, target = autoscaler.namespace, autoscaler.target
        try:
            plan.scale = self._scales.get_scale(namespace, target)
        except TargetError as exc:
            plan.able = Condition(ABLE, False, exc.reason, str(exc))
            return plan
        except Exception as exc:
            self._metrics.reconcile_errors.labels("get_scale").inc()
            plan.able = Condition(ABLE, False, "FailedGetScale", f"reading {target}'s scale: {exc}")
            return plan
        if plan.scale.replicas == 0:
            # As the HPA does: a target scaled to zero by hand is paused, not resized.
            plan.able = Condition(ABLE, False, "ScalingDisabled", f"{target} is scaled to zero")
        try:
            other = self._conflicts.autoscaler_of(namespace, target)
        except Exception as exc:
            self._metrics.reconcile_errors.labels("list_hpas").inc()
            plan.able = plan.able or Condition(
                ABLE, False, "FailedListAutoscalers", f"cannot check for HPAs on {target}: {exc}"
            )
            return plan
        if other is None:
            plan.conflict = Condition(CONFLICT, False, "NoConflict", "")
        else:
            message = f"{other} also scales {target}; not acting while it does"
            plan.conflict = Condition(CONFLICT, True, "HorizontalPodAutoscaler", message)
            plan.able = plan.able or Condition(ABLE, False, "ConflictingAutoscaler", message)
        return plan

    @staticmethod
    def _flag_shared_targets(plans: Sequence[_Plan]) -> None:
        """Two AgentAutoscalers on one target would fight: neither acts."""

        def target(p: _Plan) -> tuple[str, str, str, str]:
            t = p.autoscaler.target
            return (p.autoscaler.namespace, t.group, t.kind, t.name)

        counts = Counter(target(p) for p in plans if p.scale is not None)
        for plan in plans:
            if plan.scale is None or counts[target(plan)] < 2:
                continue
            message = f"another AgentAutoscaler also scales {plan.autoscaler.target}"
            plan.conflict = Condition(CONFLICT, True, "AgentAutoscaler", message)
            plan.able = plan.able or Condition(ABLE, False, "ConflictingAutoscaler", message)

    def _forecast(self, plans: Sequence[_Plan], now: float) -> None:
        requests: dict[int, OutlookRequest] = {}
        for i, plan in enumerate(plans):
            policy = plan.autoscaler.policy
            if plan.scale is not None and policy is not None:
                requests[i] = OutlookRequest(
                    plan.autoscaler.agent, policy.lead_time, policy.quantile
                )
        if not requests:
            return
        try:
            outlooks = self._forecaster.outlooks(set(requests.values()), now)
        except Exception as exc:
            log.exception("the forecaster failed")
            self._metrics.reconcile_errors.labels("forecast").inc()
            outlooks = {}
            detail = f"forecaster failed: {exc}"
        else:
            detail = "no answer from the forecaster"
        for i, request in requests.items():
            plans[i].outlook = outlooks.get(request) or LoadOutlook(
                ForecastState.UNAVAILABLE, detail=detail
            )

    def _decide(self, plan: _Plan, now: float) -> None:
        policy, scale = plan.autoscaler.policy, plan.scale
        if policy is None or scale is None or plan.outlook is None or scale.replicas == 0:
            return
        uid = plan.autoscaler.uid
        memory = self._memory.get(uid) or ScalingMemory.start(now, scale.replicas)
        plan.decision, self._memory[uid] = decide(policy, scale.replicas, plan.outlook, memory, now)

    def _share_budgets(self, plans: Sequence[_Plan]) -> None:
        contenders: dict[str, tuple[_Plan, Contender]] = {}
        for plan in plans:
            decision, policy, scale = plan.decision, plan.autoscaler.policy, plan.scale
            if decision is None or policy is None or scale is None:
                continue
            if not plan.actionable:
                # Counted at what runs, never cut: this controller does not scale it.
                decision = dataclasses.replace(decision, replicas=scale.replicas, demand=None)
            gpus = self._gpus_per_replica(plan)
            contenders[plan.autoscaler.uid] = (plan, Contender(decision, policy, gpus))
        scopes: list[tuple[str, int, list[str]]] = [
            (f"namespace {ns}", budget, [u for u, (p, _) in contenders.items()
                                         if p.autoscaler.namespace == ns])
            for ns, budget in sorted(self._budgets.namespaces.items())
        ]  # fmt: skip
        if self._budgets.cluster is not None:
            scopes.append(("cluster", self._budgets.cluster, list(contenders)))
        for scope, budget, uids in scopes:
            if not uids:
                continue
            shared = enforce({u: contenders[u][1] for u in uids}, budget, scope)
            for uid, decision in shared.items():
                plan, contender = contenders[uid]
                contenders[uid] = (plan, dataclasses.replace(contender, decision=decision))
                if plan.actionable:
                    plan.decision = decision

    def _gpus_per_replica(self, plan: _Plan) -> int:
        try:
            return self._scales.gpus_per_replica(plan.autoscaler.namespace, plan.autoscaler.target)
        except Exception as exc:
            # Counting one GPU keeps the budget conservative for a template we cannot read.
            log.warning("GPUs per replica of %s unknown (%s); counting 1", plan.autoscaler.key, exc)
            return 1

    def _act(self, plan: _Plan, now: float) -> None:
        autoscaler, decision, scale = plan.autoscaler, plan.decision, plan.scale
        wall = datetime.fromtimestamp(now, UTC)
        last_scale = autoscaler.status.last_scale_time
        able = plan.able
        if able is None and decision is not None and scale is not None:
            assert autoscaler.policy is not None
            if autoscaler.policy.mode is Mode.DRY_RUN:
                able = Condition(ABLE, True, "DryRun", "mode DryRun: decisions go to status only")
            elif decision.replicas == scale.replicas:
                able = Condition(ABLE, True, "ReadyForNewScale", "")
            elif not self._may_act():
                log.info("not scaling %s: no longer the leader", autoscaler.key)
                return
            else:
                able = self._scale(autoscaler, decision, scale.replicas)
                if able.status:
                    last_scale = wall
        conditions = [c for c in (able, plan.conflict) if c is not None]
        if decision is not None:
            conditions.extend(decision.conditions)
        elif plan.outlook is not None and plan.outlook.state is ForecastState.UNAVAILABLE:
            conditions.append(
                Condition(
                    ConditionType.FORECAST_AVAILABLE, False, "SourceUnavailable",
                    plan.outlook.detail,
                )
            )  # fmt: skip
        self._warn_on_transitions(autoscaler, conditions)
        status = self._status(plan, conditions, last_scale, wall)
        self._metrics.observe(
            autoscaler,
            current=None if scale is None else scale.observed,
            decision=decision,
            outlook=plan.outlook,
            conditions={c.condition.type: c.condition.status for c in status.conditions},
        )
        if decision is not None:
            log.debug("%s: %d -> %d (%s) %s", autoscaler.key, decision.current, decision.replicas,
                      decision.reason.value, decision.message)  # fmt: skip
        try:
            self._store.update_status(autoscaler, status)
        except Exception as exc:
            self._metrics.reconcile_errors.labels("update_status").inc()
            log.warning("cannot update the status of %s: %s", autoscaler.key, exc)

    def _scale(self, autoscaler: Autoscaler, decision: Decision, current: int) -> Condition:
        target = autoscaler.target
        try:
            self._scales.set_replicas(autoscaler.namespace, target, decision.replicas)
        except Exception as exc:
            self._metrics.scales.labels(decision.direction, "error").inc()
            reason = exc.reason if isinstance(exc, TargetError) else "FailedUpdateScale"
            message = f"scaling {target} to {decision.replicas}: {exc}"
            log.warning("%s: %s", autoscaler.key, message)
            self._events.record(autoscaler, warning=True, reason=reason, message=message)
            return Condition(ABLE, False, reason, message)
        self._metrics.scales.labels(decision.direction, "success").inc()
        message = f"scaled {target} from {current} to {decision.replicas}: {decision.message}"
        log.info("%s: %s (%s)", autoscaler.key, message, decision.reason.value)
        # The Event's reason is the decision's: Forecast, Reactive, Stabilised or Limited.
        reason = decision.reason.value.title().replace("-", "")
        self._events.record(autoscaler, warning=False, reason=reason, message=message)
        return Condition(ABLE, True, "SucceededRescale", f"scaled {target} to {decision.replicas}")

    def _warn_on_transitions(self, autoscaler: Autoscaler, conditions: Sequence[Condition]) -> None:
        """A Warning Event when the controller starts being unable to act (not every pass)."""
        for condition in conditions:
            bad = (condition.type is ABLE and not condition.status) or (
                condition.type is CONFLICT and condition.status
            )
            if not bad:
                continue
            before = autoscaler.status.condition(condition.type)
            if before is not None and (before.condition.status, before.condition.reason) == (
                condition.status, condition.reason,
            ):  # fmt: skip
                continue
            if condition.reason == "ConflictingAutoscaler":
                continue  # the ConflictingAutoscaler condition reports it
            self._events.record(
                autoscaler, warning=True, reason=condition.reason, message=condition.message
            )

    @staticmethod
    def _status(
        plan: _Plan,
        conditions: Sequence[Condition],
        last_scale: datetime | None,
        wall: datetime,
    ) -> AutoscalerStatus:
        previous = plan.autoscaler.status
        # Conditions this pass could not judge keep their last value.
        judged = {c.type for c in conditions}
        kept = tuple(c for c in previous.conditions if c.condition.type not in judged)
        merged = transition(previous.conditions, tuple(conditions), wall) + kept
        order = list(ConditionType)
        outlook = plan.outlook
        forecast = previous.forecast
        if outlook is not None:
            generated = outlook.generated_at
            forecast = ForecastSummary(
                outlook.point_peak,
                outlook.quantile_peak,
                None if generated is None else datetime.fromtimestamp(generated, UTC),
            )
        return AutoscalerStatus(
            observed_generation=plan.autoscaler.generation,
            current_replicas=previous.current_replicas
            if plan.scale is None
            else plan.scale.observed,
            desired_replicas=previous.desired_replicas
            if plan.decision is None
            else plan.decision.replicas,
            forecast=forecast,
            observed_rate=previous.observed_rate if outlook is None else outlook.observed,
            last_scale_time=last_scale,
            conditions=tuple(sorted(merged, key=lambda c: order.index(c.condition.type))),
        )
