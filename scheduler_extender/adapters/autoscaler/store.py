"""AgentAutoscaler objects through the API server: list, status writes, change watch."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
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
WATCH_TIMEOUT_SECONDS = 60
MIN_WATCH_SECONDS = 1.0


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
    ignored, or every status update would trigger another pass. It can be
    started again after ``stop`` (one run per leader term); a stopped run's
    thread ends when its watch request does (``WATCH_TIMEOUT_SECONDS`` at most).
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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None  # the current run's watch.Watch (untyped)

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="watch-autoscalers", daemon=True
        )
        self._thread.start()

    def stop(self, wait: float = 1.0) -> bool:
        """Stop this run; True when its thread ended within ``wait`` seconds."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is None:
            return True
        self._thread.join(wait)
        return not self._thread.is_alive()

    def _run(self, stop: threading.Event) -> None:
        backoff = 0.5
        version: str | None = None
        generations: dict[str, int] = {}
        while not stop.is_set():
            try:
                if version is None:
                    items, version = self._store.list_raw()
                    generations = {_uid(o): _generation(o) for o in items}
                    self._on_change()
                began = time.monotonic()
                version = self._follow(version, generations, stop)
                if time.monotonic() - began < MIN_WATCH_SECONDS:
                    # A watch the server ends at once must not become a busy loop.
                    stop.wait(MIN_WATCH_SECONDS)
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    version = None  # expired resourceVersion: relist
                    continue
                backoff = self._pause(exc, backoff, stop)
            except Exception as exc:
                backoff = self._pause(exc, backoff, stop)

    def _pause(self, exc: Exception, backoff: float, stop: threading.Event) -> float:
        if stop.is_set():
            return backoff
        delay = backoff * (0.5 + random.random())
        log.warning("watch of AgentAutoscalers failed (%s); retrying in %.1fs", exc, delay)
        stop.wait(delay)
        return min(backoff * 2, self._backoff_max)

    def _follow(self, version: str, generations: dict[str, int], stop: threading.Event) -> str:
        self._watch = watch.Watch()
        # Without deserialisation the events carry "object" only; ERROR events
        # arrive as ApiException (410 included) from the stream itself.
        stream: Iterator[dict[str, Any]] = self._watch.stream(
            self._store.lister,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            deserialize=False,
        )
        for event in stream:
            if stop.is_set():
                break
            kind, raw = event["type"], event["object"]
            version = raw.get("metadata", {}).get("resourceVersion", version)
            if kind == "BOOKMARK":
                continue
            uid = _uid(raw)
            if kind == "DELETED":
                generations.pop(uid, None)
            elif generations.get(uid) == _generation(raw):
                continue  # a status write
            else:
                generations[uid] = _generation(raw)
            self._on_change()
        return version


def _uid(raw: dict[str, Any]) -> str:
    return str(raw.get("metadata", {}).get("uid", ""))


def _generation(raw: dict[str, Any]) -> int:
    return int(raw.get("metadata", {}).get("generation") or 0)
