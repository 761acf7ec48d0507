"""The reflector's watch: counted as open while it streams, its response closed when it ends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from scheduler_extender.adapters.kube.cache import ClusterCache
from scheduler_extender.adapters.kube.reflector import GoneError, Reflector
from scheduler_extender.adapters.metrics import Metrics
from tests.builders import GPU, node_json


class StreamedResponse:
    """What the official client returns for a watch with ``_preload_content=False``."""

    status = 200

    def __init__(self, events: list[dict[str, Any]], *, fail_after: bool = False) -> None:
        self.events = events
        self.fail_after = fail_after
        self.open_while_streaming: list[float | None] = []
        self.watches: Callable[[], float | None] = lambda: None
        self.closed = False

    def stream(self, amt: int | None = None, decode_content: bool = False) -> Iterator[bytes]:
        for event in self.events:
            self.open_while_streaming.append(self.watches())
            yield json.dumps(event).encode() + b"\n"
        if self.fail_after:
            raise ConnectionResetError("the API server went away")

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


def open_watches(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value(
        "scheduler_extender_watch_connections", {"kind": "node"}
    )


def added_node() -> dict[str, Any]:
    obj = node_json("n0", 8)
    obj["metadata"]["resourceVersion"] = "5"
    return {"type": "ADDED", "object": obj}


def watch_nodes(response: StreamedResponse) -> tuple[ClusterCache, Reflector[Any], Metrics]:
    """The cache's node reflector, its list call answering with ``response``."""
    metrics = Metrics()
    cache = ClusterCache(
        client.ApiClient(),
        agent_label="agent",
        assume_timeout=30.0,
        backoff_max=1.0,
        metrics=metrics,
        gpu_resource=GPU,
    )
    response.watches = lambda: open_watches(metrics)
    reflector = cache._reflectors[0]
    assert reflector.name == "node"
    reflector._lister = lambda **kwargs: response
    return cache, reflector, metrics


def test_a_watch_is_open_while_it_streams_and_closed_when_it_ends() -> None:
    response = StreamedResponse([added_node()])
    _, reflector, metrics = watch_nodes(response)
    assert open_watches(metrics) == 0

    assert reflector.watch("1") == "5"

    assert response.open_while_streaming == [1.0]
    assert open_watches(metrics) == 0
    assert response.closed


def test_a_broken_watch_is_closed_and_no_longer_counted() -> None:
    response = StreamedResponse([added_node()], fail_after=True)
    _, reflector, metrics = watch_nodes(response)

    with pytest.raises(ConnectionResetError):
        reflector.watch("1")

    assert response.open_while_streaming == [1.0]
    assert open_watches(metrics) == 0
    assert response.closed


def test_a_watch_left_early_is_closed_before_the_error_is_handled() -> None:
    # An event the cache cannot read ends the loop while the stream is suspended. The
    # caller keeps the exception (and with it this frame) through its backoff: the
    # response must not wait for the generator to be collected.
    response = StreamedResponse([{"type": "ADDED"}, added_node()])
    _, reflector, metrics = watch_nodes(response)

    with pytest.raises(KeyError) as caught:
        reflector.watch("1")

    assert caught.value is not None  # still held, as during the backoff
    assert response.closed
    assert open_watches(metrics) == 0


class ChoppedResponse(StreamedResponse):
    """Chunks that do not follow line boundaries, as a proxy or the API server may send."""

    def stream(self, amt: int | None = None, decode_content: bool = False) -> Iterator[bytes]:
        data = b"".join(super().stream(amt, decode_content))
        for start in range(0, len(data), 7):
            yield data[start : start + 7]


def test_events_split_across_chunks_are_read_whole() -> None:
    second = added_node()
    second["object"]["metadata"].update(name="n1", resourceVersion="6")
    cache, reflector, _ = watch_nodes(ChoppedResponse([added_node(), second]))

    assert reflector.watch("1") == "6"
    assert set(cache.snapshot().nodes) == {"n0", "n1"}


def test_an_expired_watch_is_relisted_not_treated_as_an_error() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    _, reflector, _ = watch_nodes(StreamedResponse([gone]))

    with pytest.raises(GoneError):
        reflector.watch("1")
