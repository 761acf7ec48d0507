"""Prometheus metrics of the AgentAutoscaler controller.

Per-object series carry ``namespace``, ``autoscaler`` and ``agent``: bounded
by the AgentAutoscaler objects that exist, and removed when one is deleted.
Reasons, directions and outcomes are fixed enums.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from scheduler_extender.domain.autoscaling.conditions import ConditionType
from scheduler_extender.domain.autoscaling.objects import Autoscaler
from scheduler_extender.domain.autoscaling.outlook import LoadOutlook
from scheduler_extender.domain.autoscaling.replicas import Decision

PREFIX = "scheduler_extender_autoscaler"
OBJECT_LABELS = ("namespace", "autoscaler", "agent")
RECONCILE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class AutoscalerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.desired = Gauge(
            f"{PREFIX}_desired_replicas",
            "Replicas the controller wants for the target (applied unless DryRun).",
            OBJECT_LABELS,
            registry=r,
        )
        self.current = Gauge(
            f"{PREFIX}_current_replicas",
            "Replicas of the target as its scale subresource reports them.",
            OBJECT_LABELS,
            registry=r,
        )
        self.forecast = Gauge(
            f"{PREFIX}_forecast_requests_per_second",
            "Peak forecast request rate over the lead time: the point forecast and the quantile.",
            (*OBJECT_LABELS, "series"),
            registry=r,
        )
        self.observed = Gauge(
            f"{PREFIX}_observed_requests_per_second",
            "The agent's observed request rate at the last decision.",
            OBJECT_LABELS,
            registry=r,
        )
        self.condition = Gauge(
            f"{PREFIX}_condition",
            "1 when the AgentAutoscaler's condition is True, 0 when False.",
            (*OBJECT_LABELS, "condition"),
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions_total",
            "Replica decisions, by reason and direction (none: the count stays).",
            ("reason", "direction"),
            registry=r,
        )
        self.scales = Counter(
            f"{PREFIX}_scale_updates_total",
            "Writes to scale subresources, by direction and outcome.",
            ("direction", "outcome"),
            registry=r,
        )
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time of one reconcile pass over every AgentAutoscaler.",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors_total",
            "Reconcile passes or objects that failed, by stage.",
            ("stage",),
            registry=r,
        )
        self.leader = Gauge(
            f"{PREFIX}_leader", "1 while this controller holds the leader Lease.", registry=r
        )
        self._series: dict[str, tuple[str, str, str]] = {}

    def observe(
        self,
        autoscaler: Autoscaler,
        *,
        current: int | None,
        decision: Decision | None,
        outlook: LoadOutlook | None,
        conditions: dict[ConditionType, bool],
    ) -> None:
        labels = (autoscaler.namespace, autoscaler.name, autoscaler.agent)
        previous = self._series.get(autoscaler.uid)
        if previous is not None and previous != labels:
            self._remove(previous)  # the agent changed
        self._series[autoscaler.uid] = labels
        if current is not None:
            self.current.labels(*labels).set(current)
        if decision is not None:
            self.desired.labels(*labels).set(decision.replicas)
            self.decisions.labels(decision.reason.value, decision.direction).inc()
        if outlook is not None:
            for series, value in (
                ("point", outlook.point_peak),
                ("quantile", outlook.quantile_peak),
            ):
                self._set_or_clear(self.forecast, (*labels, series), value)
            self._set_or_clear(self.observed, labels, outlook.observed)
        for kind, status in conditions.items():
            self.condition.labels(*labels, kind.value).set(1 if status else 0)

    def forget_all_but(self, uids: set[str]) -> None:
        """Drop the series of AgentAutoscalers that no longer exist."""
        for uid in set(self._series) - uids:
            self._remove(self._series.pop(uid))

    def _remove(self, labels: tuple[str, str, str]) -> None:
        for gauge in (self.desired, self.current, self.observed):
            _discard(gauge, labels)
        for series in ("point", "quantile"):
            _discard(self.forecast, (*labels, series))
        for kind in ConditionType:
            _discard(self.condition, (*labels, kind.value))

    @staticmethod
    def _set_or_clear(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
        if value is None:
            _discard(gauge, labels)  # unknown is an absent series, not a zero
        else:
            gauge.labels(*labels).set(value)


def _discard(gauge: Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never set
        gauge.remove(*labels)
