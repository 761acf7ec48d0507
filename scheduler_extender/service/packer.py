"""The background packer: notice unschedulable pods, plan, re-check, reserve, evict.

One ``tick`` at a time (the runner calls it periodically, only while this
replica holds the leader Lease):

1. Refresh the active plan's reservations: drop those whose pods arrived,
   expire old ones, publish the rest to the filter. While a plan is still
   outstanding nothing new is planned.
2. Ask the API server for pending pods of our scheduler with
   ``PodScheduled=False, reason=Unschedulable``; wait until they have been
   there for ``debounce`` seconds (and ``min_interval`` since the last solve).
3. Solve for the whole cached snapshot. A plan is acted on only if it places
   at least ``min_improvement`` more pods than the default at the first tier
   where they differ.
4. Re-check the plan with the independent checker against a fresh snapshot
   and fresh PodDisruptionBudgets; abort if anything changed under it.
5. Record an Event on every affected pod. In dry-run mode, stop here.
6. Reserve the target nodes (pending pods by UID, replacements of moved pods
   by owner and pod-template hash), then evict through the Eviction API, one
   pod every ``eviction_interval`` seconds. A 429 (a budget refuses) or any
   refusal aborts: reservations are dropped and a new plan is made on the
   next eligible tick.

Metrics (``adapters/packer/metrics.py``): every tick that solved counts as a
run under its outcome, and so does every tick that raised (``error``); pending
pods a plan placed count as rescued once they are bound to their reserved node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from scheduler_extender.adapters.packer.metrics import PackerMetrics
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.checker import check_plan
from scheduler_extender.domain.packing.holds import Hold, holds_for, outstanding
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.plan import Action, ActionKind, Plan
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.ports import ClusterObjects, Eviction, PackerApi
from scheduler_extender.domain.packing.reservations import EMPTY_BOOK
from scheduler_extender.domain.packing.solver import SolveOptions

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What a tick did (bounded: also a metric label)."""

    IDLE = "idle"  # nothing unschedulable
    WAITING = "waiting"  # debouncing, or too soon after the last solve
    PLAN_ACTIVE = "plan_active"  # an executed plan still has pods to arrive
    NO_IMPROVEMENT = "no_improvement"
    STALE = "stale"  # the cluster changed between solve and execution
    DRY_RUN = "dry_run"
    EXECUTED = "executed"
    ABORTED = "aborted"  # an eviction was refused


# Ticks that solved, and so count as runs; a tick that raised counts as ERROR.
RUN_OUTCOMES = (
    Outcome.NO_IMPROVEMENT,
    Outcome.STALE,
    Outcome.DRY_RUN,
    Outcome.EXECUTED,
    Outcome.ABORTED,
)
ERROR = "error"


@dataclass(frozen=True, slots=True)
class PackerConfig:
    scheduler_name: str
    policy: PackingPolicy
    options: SolveOptions
    # From PackerSettings (config.py), where the defaults are.
    debounce: float  # seconds pods must stay unschedulable before a solve
    min_interval: float  # seconds between two solves
    min_improvement: int  # more pods placed at the first tier that differs
    dry_run: bool
    reservation_ttl: float  # seconds a plan holds its nodes
    eviction_interval: float  # seconds between two evictions


class Packer:
    def __init__(
        self,
        cluster: ClusterObjects,
        api: PackerApi,
        config: PackerConfig,
        metrics: PackerMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        """``wait(seconds)`` sleeps and returns True when the packer must stop.

        ``lead`` replaces it with its term's; the default never stops.
        """
        self._cluster = cluster
        self._api = api
        self._config = config
        self._metrics = metrics
        metrics.expect_runs([*RUN_OUTCOMES, ERROR])
        self._clock = clock
        self._wait = wait or threading.Event().wait
        self._holds: tuple[Hold, ...] = ()
        self._rescued: set[str] = set()  # UIDs of the active plan's pods already counted
        self._waiting_since: float | None = None
        self._last_solve = float("-inf")
        self._announced: frozenset[tuple[str, str, str]] = frozenset()
        self.last_plan: Plan | None = None

    def lead(self, term: threading.Event, interval: float) -> None:
        """Tick every ``interval`` seconds for one leadership term (until ``term`` is set)."""
        self._wait = term.wait
        log.info("packer leading: planning for pods of %s", self._config.scheduler_name)
        try:
            while not term.is_set():
                try:
                    outcome = self.tick()
                    log.debug("packer tick: %s", outcome)
                except Exception:
                    log.exception("packer tick failed")
                term.wait(interval)
        finally:
            self.release()
            log.info("packer no longer leading; reservations released")

    def tick(self) -> Outcome:
        try:
            outcome = self._tick()
        except Exception:
            self._metrics.runs.labels(ERROR).inc()
            raise
        if outcome in RUN_OUTCOMES:
            self._metrics.runs.labels(outcome).inc()
        return outcome

    def _tick(self) -> Outcome:
        now = self._clock()
        if not self._cluster.synced:
            return Outcome.WAITING
        if self._refresh(now):
            return Outcome.PLAN_ACTIVE
        stuck = self._api.unschedulable(self._config.scheduler_name)
        if not stuck:
            self._waiting_since = None
            return Outcome.IDLE
        if self._waiting_since is None:
            self._waiting_since = now
        if (
            now - self._waiting_since < self._config.debounce
            or now - self._last_solve < self._config.min_interval
        ):
            return Outcome.WAITING
        return self._solve_and_execute(now)

    def release(self) -> None:
        """Forget the active plan and its reservations (leadership lost, or shutdown)."""
        self._holds = ()
        self._cluster.set_reservations(EMPTY_BOOK)

    # -- steps ---------------------------------------------------------------
    def _refresh(self, now: float) -> bool:
        if not self._holds:
            return False
        _, pods = self._cluster.objects()
        self._count_rescued(pods)
        book = outstanding(self._holds, pods, now)
        self._cluster.set_reservations(book)
        if not book:
            log.info("packing plan complete or expired; reservations released")
            self._holds = ()
        return bool(book)

    def _count_rescued(self, pods: Sequence[Pod]) -> None:
        """Count the plan's pending pods that are now bound to the node reserved for them."""
        reserved = {
            h.reservation.pod_uid: h.reservation.node for h in self._holds if h.reservation.pod_uid
        }
        arrived = {
            p.uid
            for p in pods
            if p.node_name and not p.terminal and reserved.get(p.uid) == p.node_name
        }
        new = arrived - self._rescued
        if new:
            self._rescued |= new
            self._metrics.pods_rescued.inc(len(new))

    def _solve_and_execute(self, now: float) -> Outcome:
        config = self._config
        nodes, pods = self._cluster.objects()
        budgets = self._api.disruption_budgets()
        plan = pack(nodes, pods, policy=config.policy, options=config.options, budgets=budgets)
        self._last_solve = now
        self.last_plan = plan
        self._metrics.solved(plan.status, plan.stats.wall_seconds)
        gain = _gain(plan)
        log.info(
            "packing plan: status %s, %d actions, gain %d, %.2fs",
            plan.status,
            len(plan.actions),
            gain,
            plan.stats.wall_seconds,
        )
        if gain < config.min_improvement:
            return Outcome.NO_IMPROVEMENT
        # The cluster may have moved on while the solver ran: check again, fresh.
        fresh_nodes, fresh_pods = self._cluster.objects()
        problems = check_plan(
            plan, fresh_nodes, fresh_pods, config.policy, self._api.disruption_budgets()
        )
        if problems:
            log.warning(
                "packing plan dropped: the cluster changed (%d problems, first: %s)",
                len(problems),
                problems[0].message,
            )
            return Outcome.STALE
        self._announce(plan)
        if config.dry_run:
            return Outcome.DRY_RUN
        self._holds = holds_for(plan, fresh_pods, self._clock() + config.reservation_ttl)
        self._rescued = set()
        self._refresh(self._clock())
        return self._evict(plan)

    def _evict(self, plan: Plan) -> Outcome:
        disruptive = [a for a in plan.actions if a.kind is not ActionKind.PLACE]
        for i, action in enumerate(disruptive):
            if i and self._wait(self._config.eviction_interval):
                self.release()
                return Outcome.ABORTED
            result = self._api.evict(action.pod)
            self._metrics.evictions.labels(result).inc()
            if result in (Eviction.EVICTED, Eviction.GONE):
                continue
            log.warning("eviction of %s %s: aborting the packing plan", action.pod.key, result)
            self._api.event(
                action.pod,
                "PackingAborted",
                f"packing plan aborted: the Eviction API refused this pod ({result}); "
                "reservations released, a new plan follows",
                warning=True,
            )
            self.release()
            self._last_solve = float("-inf")  # replan on the next eligible tick
            return Outcome.ABORTED
        return Outcome.EXECUTED

    def _announce(self, plan: Plan) -> None:
        shape = frozenset((str(a.kind), a.pod.uid, a.node) for a in plan.actions)
        if shape == self._announced:
            return  # the same plan again (dry run): its Events are already there
        self._announced = shape
        prefix = "dry run: would " if self._config.dry_run else ""
        reason = "PackingDryRun" if self._config.dry_run else "PackingPlan"
        beneficiaries = [a.pod for a in plan.actions if a.kind is not ActionKind.EVICT]
        for action in plan.actions:
            self._api.event(
                action.pod,
                reason,
                prefix + _describe(action, beneficiaries),
                warning=action.kind is ActionKind.EVICT,
            )


def _gain(plan: Plan) -> int:
    """More pods placed than the default at the first tier where they differ (0: none)."""
    for tier in plan.tiers:
        if tier.placed_after != tier.placed_default:
            return max(0, tier.placed_after - tier.placed_default)
    return 0


def _describe(action: Action, beneficiaries: Sequence[Pod]) -> str:
    pod = action.pod
    helped = sorted(
        (p for p in beneficiaries if p.priority > pod.priority), key=lambda p: -p.priority
    )[:3]
    why = (
        "make room for " + ", ".join(f"{p.key} (priority {p.priority})" for p in helped)
        if helped
        else "place more pods of its priority"
    )
    match action.kind:
        case ActionKind.PLACE:
            return f"place this pod on {action.node}: the node is reserved for it"
        case ActionKind.MOVE:
            return (
                f"evict this pod from {action.source} to {why}; "
                f"its replacement is reserved room on {action.node}"
            )
        case ActionKind.EVICT:
            return f"evict this pod from {action.node} to {why}; it fits on no other node"
