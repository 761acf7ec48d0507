"""The preempt use case: refine kube-scheduler's preemption candidates.

What is dropped and why is in ``domain/packing/preemption.py``; among other
things, each candidate must pass the extender's own filter rules once its
victims are gone. Victims come either as full pods (``nodeCacheCapable:
false``) or as UIDs (``true``), which are looked up in the cache. Either way,
only victims the cache accounts on their candidate node give room back, with
the requests the cache accounts them with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.preemption import Refinement, refine_candidates
from scheduler_extender.domain.ports import ClusterView
from scheduler_extender.service.extender import Extender


@dataclass(frozen=True, slots=True)
class Candidate:
    """One node kube-scheduler would preempt on, and its victims."""

    uids: Sequence[str]
    pod_disruption_violations: int  # NumPDBViolations, returned as sent
    pods: Sequence[Pod] | None = None  # None: sent as UIDs only


def refine(extender: Extender, pod: Pod, candidates: Mapping[str, Candidate]) -> Refinement:
    """The candidates to keep; raises ``StaleCacheError`` on a view cut off from the API server."""
    extender.require_fresh()
    cluster = extender.cluster
    victims = {
        node: c.pods if c.pods is not None else _lookup(cluster, c.uids)
        for node, c in candidates.items()
    }
    snapshot, counted = _accounted(cluster, candidates, victims)
    return refine_candidates(pod, victims, snapshot, rules=extender.rules, counted=counted)


def _accounted(
    cluster: ClusterView,
    candidates: Mapping[str, Candidate],
    victims: Mapping[str, Sequence[Pod] | None],
) -> tuple[Snapshot, dict[str, list[Pod]]]:
    """The snapshot, and per node the victims it counts there, as it counts them.

    Read under the writer lock, so that the placements match the snapshot.
    """
    counted: dict[str, list[Pod]] = {}
    with cluster.locked():
        snapshot = cluster.snapshot()
        for node, candidate in candidates.items():
            sent = {v.uid: v for v in victims.get(node) or ()}
            here: list[Pod] = []
            for uid in candidate.uids:
                if cluster.placement(uid) != node:
                    continue  # not counted there: evicting it frees nothing we track
                found = cluster.pod(uid) or sent.get(uid)
                if found is not None:
                    here.append(found)
            counted[node] = here
    return snapshot, counted


def _lookup(cluster: ClusterView, uids: Sequence[str]) -> list[Pod] | None:
    """The victims by UID from the cache; None when any is unknown."""
    with cluster.locked():
        found = [cluster.pod(uid) for uid in uids]
    if any(p is None for p in found):
        return None
    return [p for p in found if p is not None]
