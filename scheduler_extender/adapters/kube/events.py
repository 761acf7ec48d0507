"""Posting Kubernetes Events (core/v1), best effort."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str


class EventPoster:
    """Writes Events for one component; failures are logged, never raised.

    Events explain what a component did; they must not stop the work they describe.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        component: str,
        instance: str,
        timeout: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._component = component
        self._instance = instance
        self._timeout = timeout
        self._clock = clock

    def post(self, about: ObjectRef, *, warning: bool, reason: str, message: str) -> None:
        now = self._clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": {
                "apiVersion": about.api_version,
                "kind": about.kind,
                "name": about.name,
                "namespace": about.namespace,
                "uid": about.uid,
            },
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "source": {"component": self._component},
            "reportingComponent": f"scheduler-extender.io/{self._component}",
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._core.create_namespaced_event(
                about.namespace, body, _request_timeout=self._timeout
            )
        except (ApiException, OSError) as exc:
            log.warning(
                "cannot record event %s on %s/%s: %s", reason, about.namespace, about.name, exc
            )
