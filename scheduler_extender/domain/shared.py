"""A ``ClusterState`` shared between writer threads and lock-free readers."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from scheduler_extender.domain.cluster import Assumption, ClusterState, Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.resources import DEFAULT_GPU_RESOURCE
from scheduler_extender.domain.rules import NodeRule


class SharedCluster:
    """Serialises writers with a lock and publishes an immutable snapshot.

    Readers call ``snapshot()`` and get an immutable value, rebuilt lazily
    after changes (briefly under the lock). Writers (watch events, binds,
    expiry) hold the lock while they mutate and mark the snapshot changed.
    """

    def __init__(
        self,
        *,
        assume_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        gpu_resource: str = DEFAULT_GPU_RESOURCE,
    ) -> None:
        self.state = ClusterState(gpu_resource=gpu_resource)
        self._lock = threading.RLock()
        self._assume_timeout = assume_timeout
        self._clock = clock
        self._rules: dict[str, NodeRule] = {}
        self._published = self.state.snapshot()
        self._changed = False

    def snapshot(self) -> Snapshot:
        # Rebuilt on demand, not per change: a burst of watch events costs one
        # rebuild, paid by the next reader (under the lock, for microseconds).
        if self._changed:
            with self._lock:
                if self._changed:
                    snapshot = self.state.snapshot()
                    if self._rules:
                        snapshot = dataclasses.replace(snapshot, rules=tuple(self._rules.values()))
                    self._published = snapshot
                    self._changed = False
        return self._published

    def staleness(self) -> float:
        """How far behind the cluster this view may be; fed directly, it never is."""
        return 0.0

    def locked(self) -> AbstractContextManager[object]:
        """The writer lock, for check-then-assume sequences."""
        return self._lock

    def publish_locked(self) -> None:
        """Called by writers after a change: the next ``snapshot()`` shows it."""
        self._changed = True

    def publish_rule(self, name: str, rule: NodeRule) -> None:
        """Publish ``rule`` with every snapshot from now on, in place of the last one so named."""
        with self._lock:
            if rule:
                self._rules[name] = rule
            else:
                self._rules.pop(name, None)
            self.publish_locked()

    def find_pod(self, namespace: str, name: str) -> Pod | None:
        with self._lock:
            return self.state.find_pod(namespace, name)

    def pod(self, uid: str) -> Pod | None:
        with self._lock:
            return self.state.pod(uid)

    def placement(self, uid: str) -> str | None:
        with self._lock:
            return self.state.placement(uid)

    def assume_locked(self, pod: Pod, node_name: str) -> None:
        self.state.assume(pod, node_name, self._clock() + self._assume_timeout)
        self.publish_locked()

    def forget(self, uid: str) -> None:
        with self._lock:
            self.state.forget(uid)
            self.publish_locked()

    def remember_pod(self, pod: Pod) -> None:
        """Record a pod fetched directly because the watch had not delivered it yet."""
        with self._lock:
            if self.state.pod(pod.uid) is None:
                self.state.upsert_pod(pod)
                self.publish_locked()

    def expire(self) -> list[Assumption]:
        with self._lock:
            expired = self.state.expire(self._clock())
            if expired:
                self.publish_locked()
            return expired
