"""Refining kube-scheduler's preemption candidates (the extender's ``preempt`` verb).

kube-scheduler proposes, per candidate node, the victims whose eviction would
let the preemptor fit there. The extender may only drop candidates (and must
return at least one victim for each node it keeps), so this is what it does,
in order:

1. **The preemptor's own plan.** If an active packing plan reserved nodes for
   the preemptor, only those candidates are kept (any other node would be
   refused by our filter once the victims are gone).
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
unassessable: it is kept by rules 2-3 but never counts as move-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.problem import IntArray
from scheduler_extender.domain.packing.reservations import Reservation


@dataclass(frozen=True, slots=True)
class Refinement:
    kept: tuple[str, ...]
    dropped: Mapping[str, str]  # node -> why


def refine_candidates(
    preemptor: Pod,
    candidates: Mapping[str, Sequence[Pod] | None],
    snapshot: Snapshot,
) -> Refinement:
    """Which candidate nodes to keep; ``None`` victims: some UIDs were unknown."""
    book = snapshot.reservations
    dropped: dict[str, str] = {}
    planned = {r.node for r in book.reservations if r.matches(preemptor)}
    for node in candidates:
        if planned and node not in planned:
            dropped[node] = "a packing plan reserved another node for this pod"
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
    return Refinement(tuple(n for n in candidates if n not in dropped), dropped)


def _placing(reservation: Reservation, victim: Pod, node: str) -> bool:
    if reservation.pod_uid:
        return reservation.pod_uid == victim.uid
    return reservation.node == node and reservation.matches(victim)


def _moves_only(node: str, victims: Sequence[Pod] | None, snapshot: Snapshot) -> bool:
    if victims is None or any(v.owner is None for v in victims):
        return False
    columns = snapshot.columns
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
                not in snapshot.reservations.blocked(
                    victim, [names[i]], lambda n, r: snapshot.nodes[n].free(r)
                )
            ),
            None,
        )
        if target is None:
            return False
        for resource, amount in victim.requests.amounts.items():
            if amount > 0:
                taken.setdefault(resource, np.zeros(len(names), dtype=np.int64))[target] += amount
    return True
