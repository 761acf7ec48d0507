"""Refining kube-scheduler's preemption candidates (the extender's ``preempt`` verb).

kube-scheduler proposes, per candidate node, the victims whose eviction would
let the preemptor fit there by *its* accounting. The extender may only drop
candidates (and must return at least one victim for each node it keeps); a
node missing from the answer is no longer a candidate, and when none is left
nothing is preempted. This is what it drops, in order:

1. **Our own filter, once the victims are gone.** A candidate is dropped if
   the extender's filter would still refuse the preemptor there after the
   evictions (``what_if.py`` runs the filter itself on the freed nodes):
   GPUs (or other requests) still short by the extender's accounting, the
   node at ``max_agent_replicas_per_node`` for the preemptor's agent, room
   held by a packing plan for other pods, a plan that reserved other nodes
   for the preemptor, or a node the cache does not know. Only victims the
   snapshot counts on that node give back room.
   Capacity below the request and another node reserved for the preemptor
   are *unresolvable*: no eviction there could ever help.
2. **Pods a plan is placing.** A candidate is dropped if one of its victims
   is a pod an active plan is placing: the pod a reservation is for, or a
   replacement of a moved pod on its reserved node.
3. **Moves before evictions.** A candidate is *move-only* when each of its
   victims has a controller (so it is recreated) and fits on another node
   next to what is running and reserved there (admission rules, capacity;
   victims of the same candidate are placed one after another). If some
   candidate is move-only, the candidates that are not are dropped: their
   victims would be lost for good, a cheaper move exists elsewhere.

Victim lists are never shortened: kube-scheduler already chose the fewest
victims per node, and fewer could leave the preemptor without room. Victims
the cache does not know (UIDs it has not seen yet) make a candidate
unassessable by rules 2-3 (kept, but never move-only); they free nothing in
rule 1, since the extender's accounting never counted them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.problem import IntArray
from scheduler_extender.domain.packing.reservations import Reservation, ReservationBook
from scheduler_extender.domain.packing.what_if import rejected_after_eviction


@dataclass(frozen=True, slots=True)
class Refinement:
    kept: tuple[str, ...]
    dropped: Mapping[str, str]  # node -> why
    unresolvable: frozenset[str] = frozenset()  # dropped nodes no eviction could ever fix


def refine_candidates(
    preemptor: Pod,
    candidates: Mapping[str, Sequence[Pod] | None],
    snapshot: Snapshot,
    *,
    rules: FilterRules,
    counted: Mapping[str, Sequence[Pod]],
) -> Refinement:
    """Which candidate nodes to keep.

    ``candidates``: node -> victims, ``None`` when some UIDs were unknown.
    ``counted``: node -> those of its victims the snapshot counts on it, as
    it counts them (a node absent here gets no room back).
    """
    book = ReservationBook.published(snapshot)
    dropped: dict[str, str] = {}
    unresolvable: set[str] = set()
    evicted = {node: counted.get(node, ()) for node in candidates}
    for node, rejection in rejected_after_eviction(preemptor, evicted, snapshot, rules).items():
        dropped[node] = f"after the evictions: {rejection.message}"
        if rejection.unresolvable:
            unresolvable.add(node)
    for node, victims in candidates.items():
        if node in dropped or victims is None:
            continue
        held = [v.key for v in victims if any(_placing(r, v, node) for r in book.reservations)]
        if held:
            dropped[node] = f"an active packing plan is placing {', '.join(held)}"
    remaining = [n for n in candidates if n not in dropped]
    movable = [n for n in remaining if _moves_only(n, candidates[n], snapshot)]
    if movable:
        for node in remaining:
            if node not in movable:
                dropped[node] = "its victims could not be re-placed; another node needs only moves"
    kept = tuple(n for n in candidates if n not in dropped)
    return Refinement(kept, dropped, frozenset(unresolvable))


def _placing(reservation: Reservation, victim: Pod, node: str) -> bool:
    if reservation.pod_uid:
        return reservation.pod_uid == victim.uid
    return reservation.node == node and reservation.matches(victim)


def _moves_only(node: str, victims: Sequence[Pod] | None, snapshot: Snapshot) -> bool:
    if victims is None or any(v.owner is None for v in victims):
        return False
    columns = snapshot.columns
    book = ReservationBook.published(snapshot)
    names = [n for n in snapshot.nodes if n != node]
    rows = columns.rows_of(names)
    taken: dict[str, IntArray] = {}  # resource -> extra load per other node
    for victim in sorted(victims, key=lambda v: -sum(v.requests.amounts.values())):
        fits = np.ones(len(names), dtype=np.bool_)
        for resource, amount in victim.requests.amounts.items():
            if amount <= 0:
                continue
            extra = taken.setdefault(resource, np.zeros(len(names), dtype=np.int64))
            fits &= columns.free_of(resource, rows) - extra >= amount
        target = next(
            (
                i
                for i in np.flatnonzero(fits).tolist()
                if snapshot.nodes[names[i]].node.admits(victim)
                and names[i]
                not in book.blocked(victim, [names[i]], lambda n, r: snapshot.nodes[n].free(r))
            ),
            None,
        )
        if target is None:
            return False
        for resource, amount in victim.requests.amounts.items():
            if amount > 0:
                taken.setdefault(resource, np.zeros(len(names), dtype=np.int64))[target] += amount
    return True
