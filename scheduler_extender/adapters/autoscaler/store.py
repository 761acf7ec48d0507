"""AgentAutoscaler objects through the API server: list, status writes, change watch."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler_extender.adapters.autoscaler.resource import (
    GROUP,
    PLURAL,
    VERSION,
    autoscaler_from_json,
    status_to_json,
)
from scheduler_extender.adapters.kube.reflector import Event, Reflector
from scheduler_extender.domain.autoscaling.objects import Autoscaler, AutoscalerStatus

LIST_PAGE_SIZE = 500
WATCH_TIMEOUT_SECONDS = 60


class KubeAutoscalerStore:
    """Reads AgentAutoscalers in one namespace (or all) and writes their status."""

    def __init__(
        self, api: client.ApiClient, *, namespace: str = "", timeout: float = 10.0
    ) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._namespace = namespace
        self._timeout = timeout

    def list_autoscalers(self) -> Sequence[Autoscaler]:
        """Every object (paged)."""
        found: list[Autoscaler] = []
        token: str | None = None
        while True:
            body = _json(
                self.lister(limit=LIST_PAGE_SIZE, _continue=token, _request_timeout=self._timeout)
            )
            found.extend(autoscaler_from_json(raw) for raw in body.get("items", []))
            token = body.get("metadata", {}).get("continue") or None
            if token is None:
                return found

    def lister(self, **kwargs: Any) -> Any:
        """The raw list call (also what the watch streams from)."""
        kwargs["_preload_content"] = False
        if self._namespace:
            return self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self._namespace, PLURAL, **kwargs
            )
        return self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)

    def update_status(self, autoscaler: Autoscaler, status: AutoscalerStatus) -> None:
        """Merge-patch ``status`` when what it shows changed (status writes are not free)."""
        body = status_to_json(status)
        if body == status_to_json(autoscaler.status):
            return
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                autoscaler.namespace,
                PLURAL,
                autoscaler.name,
                {"status": body},
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if exc.status == 404:  # deleted since the list: nothing to report on
                return
            raise


def _json(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.data)
    return body


class AutoscalerWatch:
    """Calls ``on_change`` when an AgentAutoscaler is created, deleted or its spec changes.

    The controller lists on every pass anyway; the watch only wakes it early.
    Status writes (ours included) leave ``metadata.generation`` alone and are
    ignored, or every status update would trigger another pass. It can be
    started again after ``stop`` (one run per leader term).
    """

    def __init__(
        self,
        store: KubeAutoscalerStore,
        on_change: Callable[[], None],
        *,
        backoff_max: float = 30.0,
    ) -> None:
        self._on_change = on_change
        self._generations: dict[str, int] = {}
        self._reflector = Reflector(
            "AgentAutoscaler",
            store.lister,
            self,
            backoff_max=backoff_max,
            watch_timeout_seconds=WATCH_TIMEOUT_SECONDS,
        )

    def start(self) -> None:
        self._reflector.start()

    def stop(self, wait: float = 1.0) -> bool:
        """Stop this run; True when its thread ended within ``wait`` seconds."""
        return self._reflector.stop(wait)

    # -- the reflector's sink --------------------------------------------------
    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        return raw

    def replace(self, items: list[dict[str, Any]]) -> None:
        self._generations = {_uid(o): _generation(o) for o in items}
        self._on_change()

    def apply(self, event: Event, item: dict[str, Any]) -> None:
        uid = _uid(item)
        if event == "DELETED":
            self._generations.pop(uid, None)
        elif self._generations.get(uid) == _generation(item):
            return  # a status write
        else:
            self._generations[uid] = _generation(item)
        self._on_change()


def _uid(raw: dict[str, Any]) -> str:
    return str(raw.get("metadata", {}).get("uid", ""))


def _generation(raw: dict[str, Any]) -> int:
    return int(raw.get("metadata", {}).get("generation") or 0)
