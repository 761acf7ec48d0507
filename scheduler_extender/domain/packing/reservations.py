"""Capacity a packing plan holds on nodes until its pods arrive, and the filter's view of it.

A plan places pending pods and the replacements of moved pods on chosen
nodes. Between the evictions and those arrivals, kube-scheduler could give the
freed room to some other pod; a reservation prevents that:

- a pod a reservation is *for* (by UID for a pending pod, by owner and
  pod-template hash for a replacement, which the controller creates under a
  new name) may only go to a node reserved for it;
- every other pod sees the reserved amounts as taken on those nodes.

Reservations expire: a plan that does not complete never holds capacity for
long. The executor drops a reservation once its pod is bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.problem import template_hash
from scheduler_extender.domain.resources import PODS, Resources
from scheduler_extender.domain.rules import FreeAmounts


@dataclass(frozen=True, slots=True)
class Reservation:
    node: str
    requests: Resources  # per pod
    expires_at: float  # on the book's clock
    pod_uid: str = ""  # a pending pod placed by the plan
    owner_uid: str = ""  # or: replacements of a moved pod, by owner ...
    template_hash: str = ""  # ... and pod-template hash
    slots: int = 1  # pods it still holds room for

    def matches(self, pod: Pod) -> bool:
        if self.pod_uid:
            return pod.uid == self.pod_uid
        return (
            pod.owner is not None
            and pod.owner.uid == self.owner_uid
            and template_hash(pod) == self.template_hash
        )


@dataclass(frozen=True, slots=True)
class ReservationBook:
    """The active reservations, immutable: a new book replaces the old one.

    The filter runs it as a ``NodeRule`` (published with the snapshot).
    """

    reservations: tuple[Reservation, ...] = ()
    # node -> reservations on it, built once per book
    _by_node: Mapping[str, tuple[Reservation, ...]] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )

    @staticmethod
    def of(reservations: Iterable[Reservation]) -> ReservationBook:
        active = tuple(r for r in reservations if r.slots > 0)
        by_node: dict[str, list[Reservation]] = {}
        for r in active:
            by_node.setdefault(r.node, []).append(r)
        return ReservationBook(active, MappingProxyType({k: tuple(v) for k, v in by_node.items()}))

    @staticmethod
    def published(snapshot: Snapshot) -> ReservationBook:
        """The book the snapshot carries (the empty one when no plan is active)."""
        return next((r for r in snapshot.rules if isinstance(r, ReservationBook)), EMPTY_BOOK)

    @property
    def reason(self) -> str:
        return "reserved"  # filtering.Reason.RESERVED

    def __bool__(self) -> bool:
        return bool(self.reservations)

    def expired(self, now: float) -> ReservationBook:
        """The book without the reservations whose time is up."""
        return ReservationBook.of(r for r in self.reservations if r.expires_at > now)

    def blocked(self, pod: Pod, nodes: Iterable[str], free: FreeAmounts) -> dict[str, str]:
        """Nodes among ``nodes`` a reservation closes to ``pod``, with the reason."""
        own = [r for r in self.reservations if r.matches(pod)]
        planned = {r.node for r in own}
        out: dict[str, str] = {}
        for name in nodes:
            if planned and name not in planned:
                where = ", ".join(sorted(planned))
                out[name] = f"a packing plan reserved {where} for this pod"
                continue
            held = [r for r in self._by_node.get(name, ()) if r not in own]
            if not held:
                continue
            short = [
                resource
                for resource, amount in pod.requests.amounts.items()
                if amount > 0
                and free(name, resource) - sum(_amount(r, resource) for r in held) < amount
            ]
            if short:
                out[name] = f"capacity reserved by a packing plan ({', '.join(sorted(short))})"
        return out


def _amount(reservation: Reservation, resource: str) -> int:
    if resource == PODS:
        return reservation.slots
    return reservation.requests.get(resource) * reservation.slots


EMPTY_BOOK = ReservationBook()
