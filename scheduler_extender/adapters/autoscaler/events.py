"""Kubernetes Events on AgentAutoscalers: every scale action, with its reason."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler_extender.adapters.autoscaler.resource import API_VERSION, KIND, timestamp
from scheduler_extender.domain.autoscaling.objects import Autoscaler

log = logging.getLogger(__name__)

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
        now = timestamp(self._clock())
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{autoscaler.name}.", "namespace": autoscaler.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": autoscaler.name,
                "namespace": autoscaler.namespace,
                "uid": autoscaler.uid,
            },
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": f"scheduler-extender.io/{COMPONENT}",
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._core.create_namespaced_event(
                autoscaler.namespace, body, _request_timeout=self._timeout
            )
        except (ApiException, OSError) as exc:
            log.warning("cannot record event %s on %s: %s", reason, autoscaler.key, exc)
