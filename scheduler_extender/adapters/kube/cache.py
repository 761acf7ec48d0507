"""The watch-fed cluster cache.

Reflectors (``reflector.py``) list and then watch Nodes and Pods, and, where the
API server serves ``resource.k8s.io/v1`` (DRA) and ``dra`` is on, ResourceSlices,
ResourceClaims and DeviceClasses. Every change is applied to a ``ClusterState``
under a lock and an immutable ``Snapshot`` is published; requests read the
published snapshot and never wait for the API server.

Whether the DRA group is served is asked once, when the cache starts: a cluster
without it (or an extender without the RBAC to read it) runs with nodes and pods
alone, and its readiness does not wait for kinds it will never list.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.adapters.kube.reflector import Event, Item, Reflector, Restart
from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.domain.shared import SharedCluster

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 300
LIST_TIMEOUT = 30  # seconds: the one discovery call at start


def freeze_long_lived_objects() -> None:
    """Take what is alive now (the listed cluster) out of the garbage collector's scans.

    A cache of tens of thousands of pods makes every full collection scan them
    all, a pause of milliseconds in the middle of a request. They hold no
    reference cycles, so reference counting still frees them when they go.
    """
    gc.freeze()


@dataclass(frozen=True, slots=True)
class _Kind(Generic[Item]):
    """How one kind of object is kept in the cluster state: a reflector's sink."""

    name: str
    cache: ClusterCache
    convert_json: Callable[[Any], Item]
    replace_locked: Callable[[list[Item]], None]
    upsert_locked: Callable[[Item], None]
    delete_locked: Callable[[Item], None]

    def convert(self, raw: dict[str, Any]) -> Item | None:
        try:
            return self.convert_json(raw)
        except ValidationError as exc:
            name = raw.get("metadata", {}).get("name") if isinstance(raw, dict) else None
            log.warning("ignoring malformed %s %r: %s", self.name, name, exc)
            return None

    def replace(self, items: list[Item]) -> None:
        self.cache.replace(self.name, lambda: self.replace_locked(items))

    def apply(self, event: Event, item: Item) -> None:
        with self.cache.locked():
            if event == "DELETED":
                self.delete_locked(item)
            else:
                self.upsert_locked(item)
            self.cache.publish_locked()


class _WatchMetrics:
    def __init__(self, metrics: Metrics, kind: str) -> None:
        self._connections = metrics.watch_connections.labels(kind)
        self._restarts = {
            cause: metrics.watch_restarts.labels(kind, cause)
            for cause in ("gone", "error", "timeout")
        }

    def watching(self, delta: int) -> None:
        self._connections.inc(delta)

    def restarted(self, cause: Restart) -> None:
        self._restarts[cause].inc()


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
        dra: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(assume_timeout=assume_timeout, clock=clock, gpu_resource=gpu_resource)
        core = client.CoreV1Api(api)
        self._metrics = metrics
        self._gpu_resource = gpu_resource
        self._synced = {"node": threading.Event(), "pod": threading.Event()}
        self._stop = threading.Event()
        nodes = _Kind(
            "node",
            self,
            node_from_json,
            self.state.replace_nodes,
            self.state.upsert_node,
            lambda n: self.state.delete_node(n.name),
        )
        pods = _Kind(
            "pod",
            self,
            lambda o: pod_from_json(o, agent_label),
            self.state.replace_pods,
            self.state.upsert_pod,
            lambda p: self.state.delete_pod(p.uid),
        )
        self._reflectors: tuple[Reflector[Any], ...] = (
            self._reflector(nodes, core.list_node, backoff_max),
            self._reflector(pods, core.list_pod_for_all_namespaces, backoff_max),
        )
        self._resource_api = client.ResourceV1Api(api) if dra else None
        self._dra_reflectors: tuple[Reflector[Any], ...] = ()
        if self._resource_api is not None:
            self._dra_reflectors = self._dra(self._resource_api, backoff_max)
        self.dra_watched = False  # set by start(): the API server serves resource.k8s.io/v1
        metrics.node_gpus.source = self._node_gpus

    def _dra(
        self, resource: client.ResourceV1Api, backoff_max: float
    ) -> tuple[Reflector[Any], ...]:
        state = self.state
        slices = _Kind(
            "resourceslice",
            self,
            slice_from_json,
            state.replace_slices,
            state.upsert_slice,
            lambda s: state.delete_slice(s.name),
        )
        claims = _Kind(
            "resourceclaim",
            self,
            claim_from_json,
            state.replace_claims,
            state.upsert_claim,
            lambda c: state.delete_claim(c.key),
        )
        classes = _Kind(
            "deviceclass",
            self,
            device_class_from_json,
            state.replace_device_classes,
            state.upsert_device_class,
            lambda c: state.delete_device_class(c.name),
        )
        return (
            self._reflector(slices, resource.list_resource_slice, backoff_max),
            self._reflector(claims, resource.list_resource_claim_for_all_namespaces, backoff_max),
            self._reflector(classes, resource.list_device_class, backoff_max),
        )

    def _dra_served(self) -> bool:
        """Whether the API server serves resource.k8s.io/v1 and lets us list its three kinds.

        Without the group (404) or without the permission (403: e.g. RBAC that predates DRA)
        the extender runs on nodes and pods alone rather than report unready for good.
        """
        if self._resource_api is None:
            return False
        try:
            self._resource_api.get_api_resources(_request_timeout=LIST_TIMEOUT)
            for reflector in self._dra_reflectors:
                reflector.probe(LIST_TIMEOUT)
        except ApiException as exc:
            if exc.status in (403, 404):
                log.warning(
                    "resource.k8s.io/v1 is not served or not readable (%s %s): DRA devices "
                    "are not watched",
                    exc.status,
                    exc.reason,
                )
                return False
            log.warning("asking for resource.k8s.io/v1 failed (%s); watching it anyway", exc)
        except Exception as exc:  # e.g. a connection refused: the reflectors retry and say so
            log.warning("asking for resource.k8s.io/v1 failed (%s); watching it anyway", exc)
        return True

    def _reflector(
        self, kind: _Kind[Item], lister: Callable[..., Any], backoff_max: float
    ) -> Reflector[Item]:
        return Reflector(
            kind.name,
            lister,
            kind,
            backoff_max=backoff_max,
            watch_timeout_seconds=WATCH_TIMEOUT_SECONDS,
            observer=_WatchMetrics(metrics=self._metrics, kind=kind.name),
            clock=self._clock,
        )

    @property
    def synced(self) -> bool:
        return all(e.is_set() for e in self._synced.values())

    def staleness(self) -> float:
        """Seconds since a watch broke and has not been relisted yet (0 when healthy)."""
        broken = [r.broken_since for r in self._reflectors if r.broken_since is not None]
        return self._clock() - min(broken) if broken else 0.0

    def start(self) -> None:
        if self._dra_reflectors and self._dra_served():
            self.dra_watched = True
            for reflector in self._dra_reflectors:
                self._synced[reflector.name] = threading.Event()
            self._reflectors = (*self._reflectors, *self._dra_reflectors)
        for reflector in self._reflectors:
            reflector.start()
        threading.Thread(target=self._expire_loop, name="assume-expiry", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for reflector in self._reflectors:
            reflector.stop()

    def replace(self, kind: str, replace_locked: Callable[[], None]) -> None:
        """A kind's (re)listed objects in place of the old ones, the kind marked synced."""
        with self._lock:
            replace_locked()
            # Before publishing, so that the snapshot published says synced too.
            self._synced.setdefault(kind, threading.Event()).set()
            self.publish_locked()
        freeze_long_lived_objects()
        self._refresh_gauges()

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
            slices, claims, classes = self.state.device_counts
            assumed = self.state.assumed_count
        self._metrics.cache_objects.labels("node").set(nodes)
        self._metrics.cache_objects.labels("pod").set(pods)
        if self.dra_watched:
            self._metrics.cache_objects.labels("resourceslice").set(slices)
            self._metrics.cache_objects.labels("resourceclaim").set(claims)
            self._metrics.cache_objects.labels("deviceclass").set(classes)
        self._metrics.assumed_pods.set(assumed)
        self._metrics.cache_synced.set(1 if self.synced else 0)

    def _node_gpus(self) -> Iterator[tuple[str, int, int]]:
        for state in self.snapshot().nodes.values():
            total = state.allocatable(self._gpu_resource)
            if total:
                yield state.name, total, total - state.free(self._gpu_resource)
