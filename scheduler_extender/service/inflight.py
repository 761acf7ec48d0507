"""The pod kube-scheduler has chosen a node for, until its bind reaches us.

kube-scheduler schedules one pod at a time, but binds asynchronously: right
after it assumes pod N on a node it starts the next cycle, and the bind of N
comes only after N's PreBind plugins (volume binding of WaitForFirstConsumer
claims, DRA allocation, slow API writes) are done. Filter and prioritize for
pod N+1 can therefore arrive before the bind of N, and an answer made then
misses N: its agent limit, its spread and its load.

We do not know which node kube-scheduler chose for N (its own plugins' scores
and random tie-breaking decide), so guessing is no fix. What we know is that
once our filter let N through, kube-scheduler either binds N (through us) or
gives N up (it comes back through filter later). So the filter of the next pod
waits until N is settled: its bind reached us (and was assumed or refused),
the watch shows N bound or gone, N itself is filtered again, or a bounded wait
ran out (N failed after filter, e.g. in Reserve or Permit, and nothing will
come). The wait stays below kube-scheduler's ``httpTimeout`` for the filter.

Since 1.35 kube-scheduler also writes the chosen node into N's
``status.nominatedNodeName`` before a PreBind that will take time
(NominatedNodeNameForExpectation): the watch then settles N within
milliseconds, and the extender counts N on that node until its bind.

Nothing waits when binds keep up, which is the usual case; the wait costs
throughput only where the window is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from scheduler_extender.domain.objects import Pod


class Settled(StrEnum):
    """How the previous pod was settled before a filter (a bounded metric label)."""

    NONE = "none"  # nothing was in flight
    SAME_POD = "same_pod"  # the in-flight pod itself is filtered again
    BIND = "bind"  # its bind reached us
    WATCH = "watch"  # the watch shows it bound, nominated to its node, or gone
    TIMEOUT = "timeout"  # nothing came in time: it failed after our filter


@dataclass(frozen=True, slots=True)
class Waited:
    settled: Settled
    seconds: float


@dataclass
class InFlight:
    """At most one pod between our filter and its bind (kube-scheduler's cycle is serial)."""

    timeout: float  # seconds; below kube-scheduler's httpTimeout for the filter
    poll: float = 0.02  # seconds between looks at the watch-fed cache
    _pod: Pod | None = None
    _bound: dict[str, asyncio.Event] = field(default_factory=dict)  # uid -> set by its bind

    def begin(self, pod: Pod) -> None:
        """Our filter let ``pod`` through: kube-scheduler may now choose a node for it."""
        self._pod = pod
        self._bound[pod.uid] = asyncio.Event()

    def end(self, uid: str) -> None:
        """The bind of ``uid`` reached us and its outcome is accounted."""
        if self._pod is not None and self._pod.uid == uid:
            self._pod = None
        event = self._bound.pop(uid, None)
        if event is not None:
            event.set()

    async def settle(self, pod: Pod, settled_by_watch: Callable[[Pod], bool]) -> Waited:
        """Wait until the pod in flight, if any other than ``pod``, is settled.

        ``settled_by_watch(p)``: whether the cache already shows ``p`` placed or gone.
        """
        previous, self._pod = self._pod, None
        if previous is None:
            return Waited(Settled.NONE, 0.0)
        # begin() and end() keep _pod and _bound together: previous has its event,
        # which stays registered while we wait so that its bind can set it.
        try:
            if previous.uid == pod.uid:
                return Waited(Settled.SAME_POD, 0.0)
            return await self._wait(previous, self._bound[previous.uid], settled_by_watch)
        finally:
            self._bound.pop(previous.uid, None)

    async def _wait(
        self, pod: Pod, bound: asyncio.Event, settled_by_watch: Callable[[Pod], bool]
    ) -> Waited:
        start = time.monotonic()
        deadline = start + self.timeout
        while not bound.is_set():
            if settled_by_watch(pod):
                return Waited(Settled.WATCH, time.monotonic() - start)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Waited(Settled.TIMEOUT, time.monotonic() - start)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bound.wait(), min(self.poll, remaining))
        return Waited(Settled.BIND, time.monotonic() - start)
