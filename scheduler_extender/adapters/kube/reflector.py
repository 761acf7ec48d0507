"""List and watch one kind of object: the service's one watch loop.

A ``Reflector`` lists a kind (paged), hands the items to its ``Sink``, then
streams the watch from the list's resourceVersion and hands it every change.
It resumes from the last resourceVersion seen (bookmarks included) when the
server ends a watch, relists on 410 Gone, and relists after any other error
with a bounded, jittered exponential backoff, counting how long it has been
blind (``broken_since``). The cluster cache and the AgentAutoscaler watch both
run on it.

The watch stream is read here rather than through the client's
``watch.Watch``: without deserializing, that class fails on the API server's
ERROR events (it looks for a key it only adds when deserializing), which
turned 410 Gone into an error and a backoff; and its line splitting costs more
than parsing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, Generic, Literal, Protocol, TypeVar

import orjson
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 500
LIST_TIMEOUT_SECONDS = 60
# A connection that hangs without closing is noticed by this read timeout (the
# API server sends a bookmark at least every minute).
WATCH_READ_TIMEOUT_SECONDS = 90
# A watch the server ends at once must not become a busy loop.
MIN_WATCH_SECONDS = 1.0

Item = TypeVar("Item")
Event = Literal["ADDED", "MODIFIED", "DELETED"]
Restart = Literal["gone", "error", "timeout"]


class Sink(Protocol[Item]):
    """Where a reflector delivers what it reads."""

    def convert(self, raw: dict[str, Any]) -> Item | None:
        """The object in the sink's terms; None to skip it (malformed, not wanted)."""
        ...

    def replace(self, items: list[Item]) -> None:
        """Everything there is, after a (re)list."""
        ...

    def apply(self, event: Event, item: Item) -> None:
        """One change seen by the watch."""
        ...


class WatchObserver(Protocol):
    """What a reflector reports about its connection (metrics)."""

    def watching(self, delta: int) -> None:
        """A watch connection opened (+1) or closed (-1)."""
        ...

    def restarted(self, cause: Restart) -> None: ...


class _Unobserved:
    def watching(self, delta: int) -> None:
        pass

    def restarted(self, cause: Restart) -> None:
        pass


class GoneError(Exception):
    """The watch's resourceVersion is too old: relist."""


class Reflector(Generic[Item]):
    """Keeps a ``Sink`` in step with one kind of object on the API server.

    ``lister`` is the client's list call for the kind (it takes the list and
    watch parameters and ``_preload_content=False``). It can be started again
    after ``stop`` (one run per leader term).
    """

    def __init__(
        self,
        name: str,
        lister: Callable[..., Any],
        sink: Sink[Item],
        *,
        backoff_max: float,
        watch_timeout_seconds: int,
        observer: WatchObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._lister = lister
        self._sink = sink
        self._backoff_max = backoff_max
        self._watch_timeout = watch_timeout_seconds
        self._observer: WatchObserver = observer or _Unobserved()
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._responses: list[Any] = []  # open watch responses, shut down by stop()
        self.broken_since: float | None = None  # when a failed watch left us blind

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name=f"watch-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, wait: float = 0.0) -> bool:
        """Stop this run; True when its thread ended within ``wait`` seconds."""
        self._stop.set()
        for response in list(self._responses):
            # Unblocks the watch thread's read at once (closing could wait for it).
            response.shutdown()
        if self._thread is None:
            return True
        self._thread.join(wait)
        return not self._thread.is_alive()

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        version: str | None = None
        while not stop.is_set():
            try:
                if version is None:
                    version = self.list()
                    self.broken_since = None
                began = self._clock()
                version = self.watch(version)
                if self._clock() - began < MIN_WATCH_SECONDS:
                    stop.wait(MIN_WATCH_SECONDS)
                backoff = 0.5
            except GoneError:
                log.info("watch of %ss expired (410 Gone); relisting", self.name)
                self._observer.restarted("gone")
                version = None
            except Exception as exc:
                if isinstance(exc, ApiException) and exc.status == 410:
                    self._observer.restarted("gone")
                    version = None
                    continue
                if stop.is_set():
                    return
                self._observer.restarted("error")
                # Events may have been missed while the connection was broken:
                # relist rather than resume, and count how long we are blind.
                version = None
                if self.broken_since is None:
                    self.broken_since = self._clock()
                delay = backoff * (0.5 + random.random())
                log.warning("watch of %ss failed (%s); retrying in %.1fs", self.name, exc, delay)
                stop.wait(delay)
                backoff = min(backoff * 2, self._backoff_max)

    def probe(self, timeout: float) -> None:
        """One list call of a single item: raises what listing would (e.g. 403, 404)."""
        self._lister(limit=1, _preload_content=False, _request_timeout=timeout)

    def list(self) -> str:
        """List every object (paged) into the sink; the list's resourceVersion."""
        items: list[Item] = []
        token: str | None = None
        while True:
            response = self._lister(
                limit=LIST_PAGE_SIZE,
                _continue=token,
                _preload_content=False,
                _request_timeout=LIST_TIMEOUT_SECONDS,
            )
            body = orjson.loads(response.data)
            for raw in body.get("items", []):
                item = self._sink.convert(raw)
                if item is not None:
                    items.append(item)
            token = body.get("metadata", {}).get("continue") or None
            if token is None:
                version: str = body["metadata"]["resourceVersion"]
                break
        self._sink.replace(items)
        log.info("listed %d %ss at resourceVersion %s", len(items), self.name, version)
        return version

    def watch(self, version: str) -> str:
        """Follow one watch from ``version`` until the server ends it; the last version seen."""
        events = self._events(version)
        self._observer.watching(+1)
        try:
            for event in events:
                kind_of_event = event["type"]
                raw = event["object"]
                if kind_of_event == "ERROR":
                    if raw.get("code") == 410:
                        raise GoneError
                    raise RuntimeError(f"watch error: {raw.get('message', raw)}")
                version = raw.get("metadata", {}).get("resourceVersion", version)
                if kind_of_event == "BOOKMARK":
                    continue
                item = self._sink.convert(raw)
                if item is not None:
                    self._sink.apply(kind_of_event, item)
        finally:
            # Closed here rather than whenever the generator is collected: the
            # response and its connection go at once, as the gauge says.
            events.close()
            self._observer.watching(-1)
        self._observer.restarted("timeout")
        return version

    def _events(self, version: str) -> Generator[dict[str, Any], None, None]:
        """The watch's events, parsed, one per line of the streamed response."""
        response = self._lister(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
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
