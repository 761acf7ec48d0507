"""Kubernetes Events on AgentAutoscalers: every scale action, with its reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client

from scheduler_extender.adapters.autoscaler.resource import API_VERSION, KIND
from scheduler_extender.adapters.kube.events import EventPoster, ObjectRef
from scheduler_extender.domain.autoscaling.objects import Autoscaler

COMPONENT = "agent-autoscaler"


class KubeEventRecorder:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        instance: str,
        timeout: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._events = EventPoster(
            api, component=COMPONENT, instance=instance, timeout=timeout, clock=clock
        )

    def record(self, autoscaler: Autoscaler, *, warning: bool, reason: str, message: str) -> None:
        """Best effort: an Event that cannot be written is logged, never raised."""
        about = ObjectRef(API_VERSION, KIND, autoscaler.name, autoscaler.namespace, autoscaler.uid)
        self._events.post(about, warning=warning, reason=reason, message=message)
