"""The ``scale`` subresource of whatever an AgentAutoscaler targets.

Any group/version/kind with a scale subresource works (Deployment,
StatefulSet, custom resources): the kind is resolved to its resource name
through API discovery, then ``.../<plural>/<name>/scale`` is read and
merge-patched through the CustomObjects API, which only builds the URL.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from scheduler_extender.domain.autoscaling.objects import Scale, TargetRef
from scheduler_extender.domain.autoscaling.ports import TargetError


class KubeScaleClient:
    def __init__(self, api: client.ApiClient, *, gpu_resource: str, timeout: float = 10.0) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._gpu_resource = gpu_resource
        self._timeout = timeout
        self._plurals: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def get_scale(self, namespace: str, target: TargetRef) -> Scale:
        plural = self._plural(target)
        try:
            raw: Any = self._custom.get_namespaced_custom_object_scale(
                target.group, target.version, namespace, plural, target.name,
                _preload_content=False, _request_timeout=self._timeout,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                raise TargetError(f"{target} not found in {namespace}", "FailedGetScale") from exc
            raise
        body: dict[str, Any] = json.loads(raw.data)
        return Scale(
            replicas=int((body.get("spec") or {}).get("replicas") or 0),
            observed=int((body.get("status") or {}).get("replicas") or 0),
        )

    def set_replicas(self, namespace: str, target: TargetRef, replicas: int) -> None:
        plural = self._plural(target)
        try:
            self._custom.patch_namespaced_custom_object_scale(
                target.group, target.version, namespace, plural, target.name,
                {"spec": {"replicas": replicas}},
                _content_type="application/merge-patch+json", _request_timeout=self._timeout,
            )  # fmt: skip
        except ApiException as exc:
            raise TargetError(
                f"cannot scale {target}: {exc.status} {exc.reason}", "FailedUpdateScale"
            ) from exc

    def gpus_per_replica(self, namespace: str, target: TargetRef) -> int:
        """GPUs one replica requests, from the target's pod template (0 without one)."""
        plural = self._plural(target)
        raw: Any = self._custom.get_namespaced_custom_object(
            target.group, target.version, namespace, plural, target.name,
            _preload_content=False, _request_timeout=self._timeout,
        )  # fmt: skip
        body: dict[str, Any] = json.loads(raw.data)
        pod_spec = (((body.get("spec") or {}).get("template") or {}).get("spec")) or {}
        return pod_gpus(pod_spec, self._gpu_resource)

    def _plural(self, target: TargetRef) -> str:
        if not target.group:
            raise TargetError(
                f"{target}: core-group targets ({target.api_version}) are not supported",
                "UnsupportedTarget",
            )
        key = (target.group, target.version, target.kind)
        with self._lock:
            cached = self._plurals.get(key)
        if cached is not None:
            return cached
        try:
            raw: Any = self._custom.get_api_resources(
                target.group, target.version, _preload_content=False,
                _request_timeout=self._timeout,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                raise TargetError(
                    f"the API server serves no {target.api_version}", "FailedGetScale"
                ) from exc
            raise
        resources = json.loads(raw.data).get("resources", [])
        for resource in resources:
            name = str(resource.get("name", ""))
            if resource.get("kind") == target.kind and "/" not in name:
                if f"{name}/scale" not in {r.get("name") for r in resources}:
                    raise TargetError(
                        f"{target.kind} in {target.api_version} has no scale subresource",
                        "FailedGetScale",
                    )
                with self._lock:
                    self._plurals[key] = name
                return name
        raise TargetError(f"{target.api_version} has no kind {target.kind}", "FailedGetScale")


def pod_gpus(pod_spec: dict[str, Any], gpu_resource: str) -> int:
    """The pod's effective GPU request: the larger of its containers' sum and any init container."""

    def gpus(container: dict[str, Any]) -> Decimal:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(gpu_resource)
        if value is None:  # extended resources may be given as limits only
            value = (resources.get("limits") or {}).get(gpu_resource)
        return Decimal(0) if value is None else Decimal(parse_quantity(value))

    main = sum((gpus(c) for c in pod_spec.get("containers") or []), Decimal(0))
    init = max((gpus(c) for c in pod_spec.get("initContainers") or []), default=Decimal(0))
    return int(max(main, init).to_integral_value(rounding="ROUND_CEILING"))
