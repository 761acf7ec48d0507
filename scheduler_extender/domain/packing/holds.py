"""What executing a plan reserves, and which of it is still outstanding as pods arrive."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.plan import ActionKind, Plan
from scheduler_extender.domain.packing.problem import template_hash
from scheduler_extender.domain.packing.reservations import Reservation, ReservationBook


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation as first made, with the pods already on its node that match it."""

    reservation: Reservation
    present: frozenset[str]  # UIDs of matching pods on the node when the plan started


def holds_for(plan: Plan, pods: Iterable[Pod], expires_at: float) -> tuple[Hold, ...]:
    """What executing ``plan`` must reserve: one hold per placed pod and per moved group."""
    placed: list[Reservation] = []
    moved: dict[tuple[str, str, str], list[Pod]] = {}
    for action in plan.actions:
        pod = action.pod
        if action.kind is ActionKind.PLACE:
            placed.append(Reservation(action.node, pod.requests, expires_at, pod_uid=pod.uid))
        elif action.kind is ActionKind.MOVE and pod.owner is not None:
            moved.setdefault((pod.owner.uid, template_hash(pod), action.node), []).append(pod)
    for (owner, digest, node), leaving in moved.items():
        placed.append(
            Reservation(
                node,
                leaving[0].requests,
                expires_at,
                owner_uid=owner,
                template_hash=digest,
                slots=len(leaving),
            )
        )
    everyone = list(pods)
    return tuple(
        Hold(r, frozenset(p.uid for p in everyone if p.node_name == r.node and r.matches(p)))
        for r in placed
    )


def outstanding(holds: Iterable[Hold], pods: Iterable[Pod], now: float) -> ReservationBook:
    """The reservations still needed: unexpired, for pods that have not arrived yet.

    A placed pod's reservation ends when the pod is bound (anywhere) or gone; a
    moved group's slots shrink as new matching pods are bound on the node.
    """
    by_uid = {p.uid: p for p in pods}
    active: list[Reservation] = []
    for hold in holds:
        r = hold.reservation
        if r.expires_at <= now:
            continue
        if r.pod_uid:
            pod = by_uid.get(r.pod_uid)
            if pod is not None and not pod.node_name and not pod.terminal:
                active.append(r)
            continue
        arrived = sum(
            1
            for p in by_uid.values()
            if p.node_name == r.node
            and p.uid not in hold.present
            and not p.terminal
            and not p.deleting
            and r.matches(p)
        )
        if arrived < r.slots:
            active.append(dataclasses.replace(r, slots=r.slots - arrived))
    return ReservationBook.of(active)
