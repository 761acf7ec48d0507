"""Filter, prioritize and bind, on a cluster snapshot."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress

import numpy as np

from scheduler_extender.domain.columns import IntArray
from scheduler_extender.domain.filtering import FilterOutcome, FilterRules, check_node, filter_nodes
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.popularity import PopularitySource
from scheduler_extender.domain.ports import BindConflictError, Binder, ClusterView
from scheduler_extender.domain.scoring.policy import ScoringContext
from scheduler_extender.domain.scoring.registry import Scorer, ScoreTable
from scheduler_extender.service.inflight import InFlight, Waited
from scheduler_extender.service.requeue import Refusals

log = logging.getLogger(__name__)


class BindError(Exception):
    """A bind that must be reported to kube-scheduler as failed."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome  # a bounded metric label


def _log_top_scores(pod: Pod, table: ScoreTable, top: int = 5) -> None:
    """At debug level: the best nodes and each policy's share of their score."""
    best = sorted(range(len(table.hosts)), key=lambda i: table.scores[i], reverse=True)[:top]
    for i in best:
        shares = {name: round(values[i], 2) for name, values in table.contributions.items()}
        log.debug(
            "score %s -> %s: %d %s",
            pod.key,
            table.hosts[i],
            table.scores[i],
            shares,
            extra={
                "pod": pod.key,
                "node": table.hosts[i],
                "score": table.scores[i],
                "policies": shares,
            },
        )


def _ignore(_: Waited) -> None:
    pass


class StaleCacheError(Exception):
    """The cache has been cut off from the API server for too long to decide."""


@dataclass(frozen=True, slots=True)
class _Passed:
    """The last filter's answer: the nodes it passed and their rows in ``index``."""

    uid: str
    names: list[str]
    rows: IntArray
    index: Mapping[str, int]  # the columns' row of each node when it was filtered


_NOTHING_PASSED = _Passed("", [], np.zeros(0, dtype=np.int64), {})


@dataclass(frozen=True, slots=True)
class BindRequest:
    namespace: str
    name: str
    uid: str
    node: str


@dataclass
class Extender:
    cluster: ClusterView
    binder: Binder
    popularity: PopularitySource
    scorer: Scorer
    rules: FilterRules
    gpu_resource: str
    # The kube-scheduler profiles whose pods we decide for (and may bind).
    scheduler_names: frozenset[str]
    in_flight: InFlight
    # Refusals kube-scheduler may have to be asked to retry (service/requeue.py).
    refusals: Refusals = field(default_factory=lambda: Refusals(window=0.0))
    max_staleness: float = 30.0  # seconds a broken watch may lag before we refuse to decide
    # Told how each filter waited for the previous pod's bind (metrics).
    on_wait: Callable[[Waited], None] = _ignore
    _passed: _Passed = field(default_factory=lambda: _NOTHING_PASSED)

    async def filter(
        self, pod: Pod, names: Iterable[str], *, sent_nodes: Sequence[Node] = ()
    ) -> FilterOutcome:
        """``sent_nodes``: node objects kube-scheduler sent (nodeCacheCapable false).

        Decides on a view that holds the pod kube-scheduler chose a node for
        just before this one (see ``service/inflight.py``).
        """
        self.require_fresh()
        self.on_wait(await self.in_flight.settle(pod, self._settled_by_watch))
        outcome, index = self._decide(pod, names, sent_nodes)
        self._passed = _Passed(pod.uid, outcome.passed, outcome.passed_rows, index)
        if pod.scheduler_name in self.scheduler_names:
            self.refusals.record(pod, outcome)
            if outcome.passed:
                self.in_flight.begin(pod)
        return outcome

    def feasible(
        self, pod: Pod, names: Iterable[str], *, sent_nodes: Sequence[Node] = ()
    ) -> FilterOutcome:
        """The filter's answer on the current view, with no waiting and no side effect."""
        return self._decide(pod, names, sent_nodes)[0]

    def _decide(
        self, pod: Pod, names: Iterable[str], sent_nodes: Sequence[Node]
    ) -> tuple[FilterOutcome, Mapping[str, int]]:
        """The filter's answer, and the row index of the columns it was given on."""
        snapshot = self.cluster.snapshot().with_unknown_nodes(sent_nodes)
        return filter_nodes(pod, names, snapshot, self.rules), snapshot.columns.rows

    def _settled_by_watch(self, pod: Pod) -> bool:
        if self.cluster.placement(pod.uid) is not None:
            return True
        current = self.cluster.find_pod(pod.namespace, pod.name)
        if current is None:
            return False  # not watched yet: only its bind or the wait's end settle it
        if current.uid != pod.uid or current.terminal:
            return True  # gone
        if current.nominated and current.nominated_node_name != pod.nominated_node_name:
            # Nominated since we filtered it: kube-scheduler names the node it chose
            # before a PreBind that will take time (NominatedNodeNameForExpectation, on
            # by default since 1.35). Count the pod there as if bound; its bind to that
            # node finds the assumption in place. (A nomination it already had came
            # from an earlier preemption and says nothing about this cycle.)
            with self.cluster.locked():
                if self.cluster.placement(pod.uid) is None:
                    self.cluster.assume_locked(current, current.nominated_node_name)
            return True
        return False

    def prioritize(
        self,
        pod: Pod,
        names: Sequence[str],
        *,
        sent_nodes: Sequence[Node] = (),
        explain: bool = False,
    ) -> ScoreTable:
        """Scores for ``names``; nodes unknown to the cache get the lowest score."""
        snapshot = self.cluster.snapshot().with_unknown_nodes(sent_nodes)
        passed = self._passed
        if (
            passed.uid == pod.uid
            and passed.index is snapshot.columns.rows
            and passed.names == names
        ):
            # kube-scheduler asks about the nodes our filter just passed, in our order.
            hosts, rows, unknown = passed.names, passed.rows, []
        else:
            unique = list(dict.fromkeys(names))
            found = snapshot.columns.rows_of(unique)
            known = found >= 0
            hosts, rows = list(compress(unique, known.tolist())), found[known]
            unknown = list(compress(unique, (~known).tolist()))
        ctx = ScoringContext(snapshot, self.popularity.current(), self.gpu_resource)
        explain = explain or log.isEnabledFor(logging.DEBUG)
        table = self.scorer.score(pod, hosts, rows, ctx, explain=explain)
        if log.isEnabledFor(logging.DEBUG):
            _log_top_scores(pod, table)
        if not unknown:
            return table
        return ScoreTable(
            [*table.hosts, *unknown],
            [*table.scores, *([0] * len(unknown))],
            {k: [*v, *([0.0] * len(unknown))] for k, v in table.contributions.items()},
        )

    async def bind(self, request: BindRequest) -> str:
        """Bind the pod; returns the outcome label. Raises BindError."""
        try:
            return await self._bind(request)
        finally:
            # Assumed or refused: either way the next filter need not wait for it.
            self.in_flight.end(request.uid)

    async def _bind(self, request: BindRequest) -> str:
        try:
            self.require_fresh()
        except StaleCacheError as exc:
            raise BindError(str(exc), "stale_cache") from None
        pod = self.cluster.find_pod(request.namespace, request.name)
        if pod is None or pod.uid != request.uid:
            # The watch may lag behind pod creation: ask the API server.
            pod = await self.binder.fetch_pod(request.namespace, request.name)
            if pod is None:
                raise BindError(f"pod {request.namespace}/{request.name} not found", "not_found")
            self.cluster.remember_pod(pod)
        if pod.uid != request.uid:
            raise BindError(
                f"pod {pod.key} has UID {pod.uid}, not {request.uid}: it was recreated",
                "uid_mismatch",
            )
        if pod.scheduler_name not in self.scheduler_names:
            # Only our kube-scheduler may have us bind: a pod of another scheduler
            # is that scheduler's to place, whoever asks.
            raise BindError(
                f"pod {pod.key} belongs to scheduler {pod.scheduler_name!r}, not to "
                f"{' or '.join(sorted(self.scheduler_names))}: not binding it",
                "foreign_scheduler",
            )
        if pod.node_name == request.node:
            return "already_bound"
        if pod.node_name:
            raise BindError(f"pod {pod.key} is already bound to {pod.node_name}", "bound_elsewhere")
        self._reserve(pod, request.node)
        self.in_flight.end(pod.uid)  # assumed: a waiting filter may go on before the API call
        try:
            await self.binder.bind(pod, request.node)
        except BindConflictError:
            current = await self.binder.fetch_pod(request.namespace, request.name)
            if current is not None and current.uid == pod.uid and current.node_name == request.node:
                return "already_bound"
            self.cluster.forget(pod.uid)
            where = current.node_name if current else "nowhere (deleted)"
            raise BindError(f"pod {pod.key} is bound to {where}", "conflict") from None
        except Exception as exc:
            self.cluster.forget(pod.uid)
            raise BindError(f"binding {pod.key} to {request.node} failed: {exc}", "error") from exc
        return "bound"

    def require_fresh(self) -> None:
        """Raises StaleCacheError when the cache is too far behind to decide on."""
        stale = self.cluster.staleness()
        if stale > self.max_staleness:
            raise StaleCacheError(
                f"the extender's cluster cache has been cut off from the API server for "
                f"{stale:.0f} s (limit {self.max_staleness:.0f} s); refusing to decide on it"
            )

    def _reserve(self, pod: Pod, node: str) -> None:
        """Check capacity and assume the pod, atomically with other binds."""
        with self.cluster.locked():
            placed = self.cluster.placement(pod.uid)
            if placed == node:
                return  # a retried bind: our earlier assumption already holds the room
            if placed is not None:
                # A bind to another node is in flight or done: a second one could
                # only fail, and dropping that node's assumption would hide its GPUs.
                raise BindError(
                    f"pod {pod.key} is already being bound to {placed}", "bound_elsewhere"
                )
            rejection = check_node(pod, node, self.cluster.snapshot(), self.rules)
            if rejection is not None:
                raise BindError(
                    f"cannot bind {pod.key} to {node}: {rejection.message}", "insufficient"
                )
            self.cluster.assume_locked(pod, node)
