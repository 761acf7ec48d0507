"""Kubernetes Events on AgentAutoscalers: every scale action, with its reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client

from scheduler_extender.adapters.autoscaler.resource import API_VERSION, KIND
from scheduler_extender.adapters.kube.events import post_event
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
        self._core = client.CoreV1Api(api)
        self._instance = instance
        self._timeout = timeout
        self._clock = clock

    def record(self, autoscaler: Autoscaler, *, warning: bool, reason: str, message: str) -> None:
        """Best effort: an Event that cannot be written is logged, never raised."""
        involved = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": autoscaler.name,
            "namespace": autoscaler.namespace,
            "uid": autoscaler.uid,
        }
        post_event(
            self._core,
            involved,
            component=COMPONENT,
            instance=self._instance,
            warning=warning,
            reason=reason,
            message=message,
            when=self._clock(),
            timeout=self._timeout,
        )
