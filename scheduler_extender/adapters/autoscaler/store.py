"""AgentAutoscaler objects through the API server: list, status writes, change watch."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from scheduler_extender.adapters.autoscaler.resource import (
    GROUP,
    PLURAL,
    VERSION,
    autoscaler_from_json,
    status_to_json,
)
from scheduler_extender.domain.autoscaling.objects import Autoscaler, AutoscalerStatus

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 500
WATCH_TIMEOUT_SECONDS = 300


class KubeAutoscalerStore:
    """Reads AgentAutoscalers in one namespace (or all) and writes their status."""

    def __init__(
        self, api: client.ApiClient, *, namespace: str = "", timeout: float = 10.0
    ) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._namespace = namespace
        self._timeout = timeout

    def list_autoscalers(self) -> Sequence[Autoscaler]:
        return [autoscaler_from_json(raw) for raw in self.list_raw()[0]]

    def list_raw(self) -> tuple[list[dict[str, Any]], str]:
        """Every object (paged) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            body = _json(
                self.lister(limit=LIST_PAGE_SIZE, _continue=token, _request_timeout=self._timeout)
            )
            items.extend(body.get("items", []))
            token = body.get("metadata", {}).get("continue") or None
            if token is None:
                return items, str(body.get("metadata", {}).get("resourceVersion", ""))

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
    ignored, or every status update would trigger another pass.
    """

    def __init__(
        self,
        store: KubeAutoscalerStore,
        on_change: Callable[[], None],
        *,
        backoff_max: float = 30.0,
    ) -> None:
        self._store = store
        self._on_change = on_change
        self._backoff_max = backoff_max
        self._generations: dict[str, int] = {}
        self._stop = threading.Event()
        self._watch: Any = None  # watch.Watch (untyped)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="watch-autoscalers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        backoff = 0.5
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    items, version = self._store.list_raw()
                    self._generations = {_uid(o): _generation(o) for o in items}
                    self._on_change()
                version = self._follow(version)
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    version = None  # expired resourceVersion: relist
                    continue
                backoff = self._pause(exc, backoff)
            except Exception as exc:
                if self._stop.is_set():
                    return
                backoff = self._pause(exc, backoff)

    def _pause(self, exc: Exception, backoff: float) -> float:
        delay = backoff * (0.5 + random.random())
        log.warning("watch of AgentAutoscalers failed (%s); retrying in %.1fs", exc, delay)
        self._stop.wait(delay)
        return min(backoff * 2, self._backoff_max)

    def _follow(self, version: str) -> str | None:
        self._watch = watch.Watch()
        # Without deserialisation the events carry "object" only; ERROR events
        # arrive as ApiException (410 included) from the stream itself.
        for event in self._events(version):
            kind, raw = event["type"], event["object"]
            version = raw.get("metadata", {}).get("resourceVersion", version)
            if kind == "BOOKMARK":
                continue
            uid = _uid(raw)
            if kind == "DELETED":
                self._generations.pop(uid, None)
            elif self._generations.get(uid) == _generation(raw):
                continue  # a status write
            else:
                self._generations[uid] = _generation(raw)
            self._on_change()
        return version

    def _events(self, version: str) -> Iterator[dict[str, Any]]:
        assert self._watch is not None
        stream: Iterator[dict[str, Any]] = self._watch.stream(
            self._store.lister,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            deserialize=False,
        )
        return stream


def _uid(raw: dict[str, Any]) -> str:
    return str(raw.get("metadata", {}).get("uid", ""))


def _generation(raw: dict[str, Any]) -> int:
    return int(raw.get("metadata", {}).get("generation") or 0)
