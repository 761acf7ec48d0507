"""Finding a HorizontalPodAutoscaler that scales the same object as an AgentAutoscaler.

Two autoscalers writing one ``scale`` subresource fight; the controller
refuses to act instead (condition ``ConflictingAutoscaler``), as the HPA
controller itself does for two HPAs on one target.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from scheduler_extender.domain.autoscaling.objects import TargetRef

# One list per namespace serves every AgentAutoscaler of a reconcile pass.
CACHE_SECONDS = 5.0


class KubeHpaConflicts:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._autoscaling = client.AutoscalingV2Api(api)
        self._timeout = timeout
        self._clock = clock
        self._cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def autoscaler_of(self, namespace: str, target: TargetRef) -> str | None:
        for hpa in self._hpas(namespace):
            ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            other = TargetRef(
                str(ref.get("apiVersion", "")), str(ref.get("kind", "")), str(ref.get("name", ""))
            )
            # Versions of one group name the same object (apps/v1 and apps/v1beta2).
            if (other.group, other.kind, other.name) == (target.group, target.kind, target.name):
                return f"HorizontalPodAutoscaler/{hpa.get('metadata', {}).get('name', '')}"
        return None

    def _hpas(self, namespace: str) -> list[dict[str, Any]]:
        now = self._clock()
        cached = self._cache.get(namespace)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        raw: Any = self._autoscaling.list_namespaced_horizontal_pod_autoscaler(
            namespace, _preload_content=False, _request_timeout=self._timeout
        )
        items: list[dict[str, Any]] = json.loads(raw.data).get("items", [])
        self._cache[namespace] = (now, items)
        return items
