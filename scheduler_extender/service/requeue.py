"""Pods our filter refused, asked back when the refusal stops holding.

kube-scheduler gives a pod the extender refused nodes for no queueing hint of
its own: it puts "Extender" among the pod's unschedulable plugins and retries
the pod on any cluster event (``findNodesThatPassExtenders`` and the
wildcard ``defaultEnqueueExtension`` in kube-scheduler). The event that frees
room (a replica deleted, a node added or uncordoned) reaches kube-scheduler's
informers and our watch at about the same time. When kube-scheduler's retry
comes first, we refuse again on a view that has not seen the event yet, and
the pod waits for some later event, or for the flush of unschedulable pods
(``podMaxInUnschedulablePodsDuration``, 5 minutes by default).

So for a short window after each refusal that left the pod no node at all
we look at our own view when it changes (the first ``MAX_CHECKS`` changes): if a node we refused the pod
would now pass, we touch the pod (an annotation), an update kube-scheduler
requeues the pod on. A pod is touched at most once per refusal, and only
when our answer changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.filtering import FilterOutcome
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.ports import ClusterView, PodToucher

log = logging.getLogger(__name__)


class Requeued(StrEnum):
    """What asking kube-scheduler to retry a pod came to (a bounded metric label)."""

    TOUCHED = "touched"
    GONE = "gone"  # deleted, or recreated under another UID
    ERROR = "error"


# Looks at one refusal, at most: each costs a filter of the pod on its refused
# nodes, on the event loop, and the event kube-scheduler may have acted on is
# among the first few our view takes in after the refusal.
MAX_CHECKS = 4


@dataclass(slots=True)
class _Refusal:
    pod: Pod
    nodes: tuple[str, ...]
    at: float
    checks: int = 0


@dataclass
class Refusals:
    """The refusals of the last ``window`` seconds, by pod UID."""

    window: float  # seconds; 0 turns requeueing off
    clock: Callable[[], float] = time.monotonic
    _recent: dict[str, _Refusal] = field(default_factory=dict)

    def record(self, pod: Pod, outcome: FilterOutcome) -> None:
        if self.window <= 0:
            return
        # Only a pod we left no node for can wait on the gap this fills: one
        # that passed somewhere is placed (or fails later for reasons of its own).
        if outcome.failed and not outcome.passed:
            self._recent[pod.uid] = _Refusal(pod, tuple(outcome.failed), self.clock())
        else:
            self._recent.pop(pod.uid, None)

    def lifted(self, lifted: Callable[[Pod, tuple[str, ...]], bool]) -> list[Pod]:
        """Pods whose refusal ``lifted(pod, nodes)`` says no longer holds; each returned once.

        Called when the view changed; a refusal is looked at ``MAX_CHECKS`` times at most.
        """
        now = self.clock()
        pods = []
        for uid, refusal in list(self._recent.items()):
            if now - refusal.at > self.window:
                del self._recent[uid]
                continue
            refusal.checks += 1
            if lifted(refusal.pod, refusal.nodes):
                pods.append(refusal.pod)
                del self._recent[uid]
            elif refusal.checks >= MAX_CHECKS:
                del self._recent[uid]
        return pods

    def __len__(self) -> int:
        return len(self._recent)


@dataclass
class Requeuer:
    refusals: Refusals
    cluster: ClusterView
    # Whether a node in ``nodes`` would now pass ``pod`` (the extender's filter, no side effect).
    passes_now: Callable[[Pod, tuple[str, ...]], bool]
    toucher: PodToucher
    interval: float = 0.05  # seconds between looks at the cache
    on_requeue: Callable[[Requeued], None] = lambda _: None

    def lifted(self, pod: Pod, nodes: tuple[str, ...]) -> bool:
        if self.cluster.placement(pod.uid) is not None:
            return False  # being bound: nothing to retry
        current = self.cluster.find_pod(pod.namespace, pod.name)
        if current is not None and current.uid == pod.uid and current.node_name:
            return False
        return self.passes_now(pod, nodes)

    async def run(self) -> None:
        if self.refusals.window <= 0:
            return
        seen: Snapshot | None = self.cluster.snapshot()
        while True:
            await asyncio.sleep(self.interval)
            if not self.refusals:
                # Asking for a snapshot would rebuild it, for nothing to look at.
                seen = None
                continue
            snapshot = self.cluster.snapshot()
            changed, seen = snapshot is not seen, snapshot
            if changed:
                for pod in self.refusals.lifted(self.lifted):
                    self.on_requeue(await self._touch(pod))

    async def _touch(self, pod: Pod) -> Requeued:
        try:
            touched = await self.toucher.touch(pod)
        except Exception as exc:  # the next event or kube-scheduler's flush still retries it
            log.warning("asking kube-scheduler to retry %s failed: %s", pod.key, exc)
            return Requeued.ERROR
        if not touched:
            return Requeued.GONE
        log.info("asked kube-scheduler to retry %s: a node it was refused now fits", pod.key)
        return Requeued.TOUCHED
