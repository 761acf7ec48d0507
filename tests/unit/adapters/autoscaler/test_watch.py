"""The AgentAutoscaler watch: which events wake the controller (no API server needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from scheduler_extender.adapters.autoscaler.store import AutoscalerWatch, KubeAutoscalerStore


def obj(uid: str, generation: int, version: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "generation": generation, "resourceVersion": version}}


class FakeResponse:
    """What the client returns with ``_preload_content=False``: a list body or watch lines."""

    status = 200

    def __init__(self, events: list[dict[str, Any]], data: bytes = b"") -> None:
        self._lines = [json.dumps(e).encode() + b"\n" for e in events]
        self.data = data

    def stream(self, amt: object = None, decode_content: object = False) -> Iterator[bytes]:
        yield from self._lines

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class FakeStore(KubeAutoscalerStore):
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.watches: list[dict[str, Any]] = []
        self.done = threading.Event()

    def lister(self, **kwargs: Any) -> Any:
        if not kwargs.get("watch"):
            listed = {"items": [obj("a", 1, "10")], "metadata": {"resourceVersion": "10"}}
            return FakeResponse([], json.dumps(listed).encode())
        self.watches.append(kwargs)
        if len(self.watches) == 1:
            return FakeResponse(self.events)
        self.done.set()  # later watches see nothing new
        return FakeResponse([])


def watch(store: FakeStore) -> list[int]:
    """The controller's wake-ups while the watch follows ``store`` until it has nothing new."""
    kicks: list[int] = []
    watcher = AutoscalerWatch(store, lambda: kicks.append(1))
    watcher.start()
    try:
        assert store.done.wait(5.0)
    finally:
        assert watcher.stop(wait=5.0)
    return kicks


def test_spec_changes_and_deletions_wake_the_controller_status_writes_do_not() -> None:
    store = FakeStore(
        [
            {"type": "MODIFIED", "object": obj("a", 1, "11")},  # a status write
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
            {"type": "MODIFIED", "object": obj("a", 2, "13")},  # the spec changed
            {"type": "ADDED", "object": obj("b", 1, "14")},
            {"type": "DELETED", "object": obj("a", 2, "15")},
        ]
    )
    kicks = watch(store)
    # One for the initial list, then the spec change, the new object and the deletion.
    assert len(kicks) == 4
    first, second = store.watches[0], store.watches[1]
    assert first["resource_version"] == "10"
    assert first["watch"] is True
    assert second["resource_version"] == "15"  # resumes after the last event seen


def test_an_expired_watch_relists_and_wakes_the_controller() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    store = FakeStore([gone])
    kicks = watch(store)
    assert len(kicks) == 2  # the first list and the relist after 410 Gone
    assert store.watches[1]["resource_version"] == "10"  # from the relist
