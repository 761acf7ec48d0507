"""The watch-fed cluster cache.

Two background threads list and then watch Nodes and Pods with the official
client, resuming from the last resourceVersion, relisting on 410 Gone and
backing off (bounded, exponential) on errors. Every change is applied to a
``ClusterState`` under a lock and an immutable ``Snapshot`` is published;
requests read the published snapshot and never wait for the API server.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.shared import SharedCluster

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 500
WATCH_TIMEOUT_SECONDS = 300
WATCH_READ_TIMEOUT_SECONDS = 90


def freeze_long_lived_objects() -> None:
    """Take what is alive now (the listed cluster) out of the garbage collector's scans.

    A cache of tens of thousands of pods makes every full collection scan them
    all, a pause of milliseconds in the middle of a request. They hold no
    reference cycles, so reference counting still frees them when they go.
    """
    gc.freeze()


class _GoneError(Exception):
    """The watch's resourceVersion is too old: relist."""


@dataclass(frozen=True, slots=True)
class _Kind:
    name: str
    lister: Callable[..., Any]
    convert: Callable[[Any], Any]
    replace: Callable[[list[Any]], None]
    upsert: Callable[[Any], None]
    delete: Callable[[Any], None]


class ClusterCache(SharedCluster):
    """Keeps a ``ClusterState`` in step with the API server."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        agent_label: str,
        assume_timeout: float,
        backoff_max: float,
        metrics: Metrics,
        gpu_resource: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(assume_timeout=assume_timeout, clock=clock, gpu_resource=gpu_resource)
        self._core = client.CoreV1Api(api)
        self._agent_label = agent_label
        self._backoff_max = backoff_max
        self._metrics = metrics
        self._gpu_resource = gpu_resource
        self._synced = {"node": threading.Event(), "pod": threading.Event()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: list[Any] = []  # open watch responses, shut down by stop()
        self._broken_since: dict[str, float | None] = {"node": None, "pod": None}
        metrics.node_gpus.source = self._node_gpus
        for kind in self._broken_since:  # export every series from the start, at 0
            metrics.watch_connections.labels(kind)
            for cause in ("gone", "error", "timeout"):
                metrics.watch_restarts.labels(kind, cause)

    @property
    def synced(self) -> bool:
        return all(e.is_set() for e in self._synced.values())

    def staleness(self) -> float:
        """Seconds since a watch broke and has not been relisted yet (0 when healthy)."""
        broken = [t for t in self._broken_since.values() if t is not None]
        return self._clock() - min(broken) if broken else 0.0

    def start(self) -> None:
        kinds = (
            _Kind(
                "node",
                self._core.list_node,
                node_from_json,
                self.state.replace_nodes,
                self.state.upsert_node,
                lambda n: self.state.delete_node(n.name),
            ),
            _Kind(
                "pod",
                self._core.list_pod_for_all_namespaces,
                lambda o: pod_from_json(o, self._agent_label),
                self.state.replace_pods,
                self.state.upsert_pod,
                lambda p: self.state.delete_pod(p.uid),
            ),
        )
        for kind in kinds:
            thread = threading.Thread(
                target=self._run, args=(kind,), name=f"watch-{kind.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        expiry = threading.Thread(target=self._expire_loop, name="assume-expiry", daemon=True)
        self._threads.append(expiry)
        expiry.start()

    def stop(self) -> None:
        self._stop.set()
        for response in list(self._responses):
            # Unblocks the watch thread's read at once (closing could wait for it).
            response.shutdown()

    # -- internals --------------------------------------------------------------
    def _run(self, kind: _Kind) -> None:
        backoff = 0.5
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(kind)
                    self._broken_since[kind.name] = None
                    freeze_long_lived_objects()
                    self._refresh_gauges()
                version = self._watch(kind, version)
                backoff = 0.5
            except _GoneError:
                log.info("watch of %ss expired (410 Gone); relisting", kind.name)
                self._metrics.watch_restarts.labels(kind.name, "gone").inc()
                version = None
            except Exception as exc:
                if isinstance(exc, ApiException) and exc.status == 410:
                    self._metrics.watch_restarts.labels(kind.name, "gone").inc()
                    version = None
                    continue
                if self._stop.is_set():
                    return
                self._metrics.watch_restarts.labels(kind.name, "error").inc()
                # Events may have been missed while the connection was broken:
                # relist rather than resume, and count how long we are blind.
                version = None
                if self._broken_since[kind.name] is None:
                    self._broken_since[kind.name] = self._clock()
                delay = backoff * (0.5 + random.random())
                log.warning("watch of %ss failed (%s); retrying in %.1fs", kind.name, exc, delay)
                self._stop.wait(delay)
                backoff = min(backoff * 2, self._backoff_max)

    def _list(self, kind: _Kind) -> str:
        items: list[Any] = []
        token: str | None = None
        while True:
            response = kind.lister(
                limit=LIST_PAGE_SIZE, _continue=token, _preload_content=False, _request_timeout=60
            )
            body = orjson.loads(response.data)
            for raw in body.get("items", []):
                converted = self._convert(kind, raw)
                if converted is not None:
                    items.append(converted)
            token = body.get("metadata", {}).get("continue") or None
            if token is None:
                version: str = body["metadata"]["resourceVersion"]
                break
        with self._lock:
            kind.replace(items)
            # Before publishing, so that the snapshot published says synced too.
            self._synced[kind.name].set()
            self.publish_locked()
        log.info("listed %d %ss at resourceVersion %s", len(items), kind.name, version)
        return version

    def _watch(self, kind: _Kind, version: str) -> str:
        events = self._events(kind, version)
        connections = self._metrics.watch_connections.labels(kind.name)
        connections.inc()
        try:
            for event in events:
                kind_of_event = event["type"]
                raw = event["object"]
                if kind_of_event == "ERROR":
                    if raw.get("code") == 410:
                        raise _GoneError
                    raise RuntimeError(f"watch error: {raw.get('message', raw)}")
                version = raw.get("metadata", {}).get("resourceVersion", version)
                if kind_of_event == "BOOKMARK":
                    continue
                converted = self._convert(kind, raw)
                if converted is None:
                    continue
                with self._lock:
                    if kind_of_event == "DELETED":
                        kind.delete(converted)
                    else:
                        kind.upsert(converted)
                    self.publish_locked()
        finally:
            # Closed here rather than whenever the generator is collected: the
            # response and its connection go at once, as the gauge says.
            events.close()
            connections.dec()
        self._metrics.watch_restarts.labels(kind.name, "timeout").inc()
        return version

    def _events(self, kind: _Kind, version: str) -> Generator[dict[str, Any], None, None]:
        """The watch's events, parsed, one per line of the streamed response.

        Read here rather than through the client's ``watch.Watch``: without
        deserializing it fails on the API server's ERROR events (it looks for a
        key it only adds when deserializing), which turned 410 Gone into an
        error and a backoff; and its line splitting costs more than parsing.
        """
        response = kind.lister(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            # A connection that hangs without closing is noticed by this read timeout
            # (the API server sends a bookmark at least every minute).
            _request_timeout=(10, WATCH_READ_TIMEOUT_SECONDS),
            _preload_content=False,
        )
        self._responses.append(response)
        try:
            partial = b""
            for chunk in response.stream(None, decode_content=False):
                *lines, partial = (partial + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
        finally:
            self._responses.remove(response)
            response.close()
            response.release_conn()

    def _convert(self, kind: _Kind, raw: Any) -> Node | Pod | None:
        try:
            converted: Node | Pod = kind.convert(raw)
        except ValidationError as exc:
            name = raw.get("metadata", {}).get("name") if isinstance(raw, dict) else None
            log.warning("ignoring malformed %s %r: %s", kind.name, name, exc)
            return None
        return converted

    def publish_locked(self) -> None:
        self.state.synced = self.synced
        super().publish_locked()

    def _expire_loop(self) -> None:
        while not self._stop.wait(1.0):
            expired = self.expire()
            for assumption in expired:
                log.warning(
                    "assumed pod %s on %s expired: no watch event confirmed the bind",
                    assumption.pod.key,
                    assumption.node_name,
                )
            self._metrics.assumed_expired.inc(len(expired))
            self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        with self._lock:
            nodes, pods = self.state.counts
            assumed = self.state.assumed_count
        self._metrics.cache_objects.labels("node").set(nodes)
        self._metrics.cache_objects.labels("pod").set(pods)
        self._metrics.assumed_pods.set(assumed)
        self._metrics.cache_synced.set(1 if self.synced else 0)

    def _node_gpus(self) -> Iterator[tuple[str, int, int]]:
        for state in self.snapshot().nodes.values():
            total = state.allocatable(self._gpu_resource)
            if total:
                yield state.name, total, total - state.free(self._gpu_resource)
