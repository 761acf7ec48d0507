"""What the use cases need from the outside world, as protocols."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.objects import Pod


class ClusterView(Protocol):
    """The cluster cache as the extender uses it."""

    def snapshot(self) -> Snapshot: ...
    def staleness(self) -> float: ...
    def find_pod(self, namespace: str, name: str) -> Pod | None: ...
    def pod(self, uid: str) -> Pod | None: ...
    def placement(self, uid: str) -> str | None: ...
    def locked(self) -> AbstractContextManager[object]: ...
    def assume_locked(self, pod: Pod, node_name: str) -> None: ...
    def forget(self, uid: str) -> None: ...
    def remember_pod(self, pod: Pod) -> None: ...


class BindConflictError(Exception):
    """The API server refused the binding because the pod is already bound."""


class Binder(Protocol):
    """Binding through the API server (coroutines: binds run on the server's event loop)."""

    async def fetch_pod(self, namespace: str, name: str) -> Pod | None: ...
    async def bind(self, pod: Pod, node_name: str) -> None: ...


class PodToucher(Protocol):
    """Writes an update to a pending pod, which makes kube-scheduler retry it."""

    async def touch(self, pod: Pod) -> bool: ...  # False: the pod is gone
