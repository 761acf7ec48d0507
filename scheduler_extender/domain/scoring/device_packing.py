"""Device-level demand-aware packing: FGD on DRA devices, shares and partitions included.

The idea of ``demand_packing.py`` (fragmentation gradient descent; Weng et al.,
"Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
Gradient Descent", USENIX ATC'23) at the granularity the paper defines it: the
device. The demand is the mix of device requests the cache has seen
(``Devices.demand``, learned by the same ``shapes.ShapeBook`` as the GPU pods'
shapes): whole devices of a class, or a share of one (an amount of its
consumable capacity, e.g. ``memory``), each with a weight (recent and pending).

On a node, the room *usable* by shape *m* is the device capacity of the copies
of *m* its devices could still take, in units of a device: a 20 GiB share of
an 80 GiB GPU is 0.25. Whole shapes use untouched devices only; shares use
what is left on each shared device (``k`` copies where ``k`` is the least of
``free / request`` over the capacities it asks for). A device with 5 GiB left
is usable by no shape asking for more: that is FGD's fragmentation. Placing a
pod changes the room on that node only, by the devices kube-scheduler's
allocator will give it; the extender cannot choose them, so it predicts them as
the allocator picks (first fit in the order the slices list the devices,
``devices.predict_allocation``). Each shape's loss is priced by its demand over
the room the cluster has for it, as in ``demand_packing``:

    price(m) = weight(m) x size(m) / usable room for m on all nodes
    cost(node) = sum over m of price(m) x (usable(m) before - usable(m) after)

The pod goes where it destroys the least room in demand. Among equal costs
(and when nothing was learned yet) the node whose devices are fullest after
the placement wins, so shares stack on devices already shared and whole
devices stay whole.

Only pods with claims still to be allocated are scored (``Audience.DEVICES``);
the others get no opinion.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.columns import FloatArray, IntArray
from scheduler_extender.domain.devices import DeviceChoice as Choice
from scheduler_extender.domain.devices import (
    DeviceRequest,
    Devices,
    DeviceShape,
    DeviceState,
    NodeDevices,
    class_matches,
    pod_devices,
)
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral

# Share of the score that goes to filling the fullest node among equally costly ones.
FILL_SHARE = 0.1


@dataclass(slots=True)
class _Slot:
    """One device during a virtual placement: what is left of it."""

    state: DeviceState
    free: dict[str, int]
    taken: bool  # an allocation holds it (shared devices: some capacity is consumed)

    @property
    def untouched(self) -> bool:
        return self.state.available and not self.taken

    def fits(self, capacity: Mapping[str, int]) -> bool:
        device = self.state.device
        if not self.state.available:
            return False
        if device.shared:
            wanted = device.consumption(capacity)
            return all(self.free.get(n, 0) >= a for n, a in wanted.items())
        return not self.taken and all(device.capacity.get(n, 0) >= a for n, a in capacity.items())

    def take(self, capacity: Mapping[str, int]) -> None:
        device = self.state.device
        if device.shared:
            for name, amount in device.consumption(capacity).items():
                self.free[name] = self.free.get(name, 0) - amount
        else:
            self.free = dict.fromkeys(self.free, 0)
        self.taken = True

    def fill(self) -> float:
        """The share of the device in use (0: untouched, 1: full)."""
        capacity = self.state.device.capacity
        if not capacity:
            return 1.0 if self.taken else 0.0
        return max(1.0 - self.free.get(n, 0) / c for n, c in capacity.items() if c > 0)


def _slots(node: NodeDevices) -> list[_Slot]:
    return [_Slot(d, dict(d.free), d.allocations > 0) for d in node.devices]


def _place(request: DeviceRequest, devices: Devices, slots: Sequence[_Slot]) -> bool:
    """Take ``request``'s devices as the allocator would (first fit); False when it does not fit."""
    for choice in request.choices:
        if choice.all_devices:
            continue
        chosen = [
            s
            for s in slots
            if class_matches(choice, devices, s.state.device) and s.fits(choice.capacity)
        ][: choice.count]
        if len(chosen) == choice.count:
            for slot in chosen:
                slot.take(choice.capacity)
            return True
    return False


def _usable(shape: DeviceShape, devices: Devices, slots: Sequence[_Slot]) -> float:
    """Device units of the copies of ``shape`` the slots could still take."""
    choice = Choice(shape.device_class, shape.count, capacity=dict(shape.capacity))
    matching = [s for s in slots if class_matches(choice, devices, s.state.device)]
    if not shape.shares:
        whole = sum(1 for s in matching if s.untouched)
        return float(whole // shape.count * shape.count)
    copies = 0
    size = 0.0
    for slot in matching:
        device = slot.state.device
        if not slot.fits(choice.capacity):
            continue
        if device.shared:
            wanted = device.consumption(choice.capacity)
            k = min((slot.free.get(n, 0) // a for n, a in wanted.items() if a > 0), default=1)
            fraction = max(
                (a / device.capacity[n] for n, a in wanted.items() if device.capacity.get(n)),
                default=1.0,
            )
        else:
            k, fraction = 1, 1.0
        copies += k
        size = max(size, fraction)
    return float(copies // shape.count * shape.count) * size


def _size(shape: DeviceShape, devices: Devices, node_devices: Sequence[NodeDevices]) -> float:
    """Device units one request of ``shape`` takes (a share: its fraction of a device)."""
    if not shape.shares:
        return float(shape.count)
    capacity = dict(shape.capacity)
    for node in node_devices:
        for state in node.devices:
            device = state.device
            if class_matches(Choice(shape.device_class), devices, device):
                fractions = [
                    a / device.capacity[n] for n, a in capacity.items() if device.capacity.get(n)
                ]
                return shape.count * (max(fractions) if fractions else 1.0)
    return float(shape.count)


@dataclass(frozen=True, slots=True)
class _Memo:
    devices: Devices
    shapes: tuple[DeviceShape, ...]
    nodes: Mapping[str, NodeDevices]  # the frozen node views ``usable`` was computed on
    usable: Mapping[str, FloatArray]  # node -> room per shape
    price: FloatArray  # per shape


class DevicePacking:
    name = "device_packing"
    audience = Audience.DEVICES

    def __init__(self) -> None:
        self._memo: _Memo | None = None
        self._lock = threading.Lock()

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        snapshot = ctx.snapshot
        devices = snapshot.devices
        if len(rows) == 0 or not pod.claims or not devices:
            return neutral(rows)
        pending = pod_devices(pod.namespace, pod.claims, devices).pending
        if not pending:
            return neutral(rows)
        memo = self._memo_of(devices)
        names = _names(snapshot, rows)
        cost = np.zeros(len(rows))
        fill = np.zeros(len(rows))
        placed = np.zeros(len(rows), dtype=np.bool_)
        for i, name in enumerate(names):
            node = devices.of(name) if name is not None else None
            if name is None or node is None or not node.devices:
                continue
            slots = _slots(node)
            if not all(_place(request, devices, slots) for request in pending):
                continue
            placed[i] = True
            fill[i] = sum(s.fill() for s in slots) / len(slots)
            if memo.shapes:
                after = np.array([_usable(m, devices, slots) for m in memo.shapes])
                cost[i] = float(memo.price @ (memo.usable[name] - after))
        if not placed.any():
            return neutral(rows)
        low, high = float(cost[placed].min()), float(cost[placed].max())
        if high - low <= 1e-9 * max(abs(high), 1.0):
            scored: FloatArray = np.where(placed, fill, 0.0)
            return scored
        spread = (high - cost) / (high - low)
        scored = np.where(placed, (1.0 - FILL_SHARE) * spread + FILL_SHARE * fill, 0.0)
        return scored

    def _memo_of(self, devices: Devices) -> _Memo:
        """Room per shape and node, and the prices; only changed nodes are recomputed.

        ``DeviceBook`` keeps a node's frozen view (the same object) while nothing on it
        changes, so a bind recomputes the room of one node, not of the cluster.
        """
        with self._lock:
            memo = self._memo
            if memo is not None and memo.devices is devices:
                return memo
            shapes = devices.demand.classes
            same = (
                memo is not None
                and memo.shapes == shapes
                and memo.devices.classes is devices.classes
            )
            usable: dict[str, FloatArray] = {}
            for name, node in devices.nodes.items():
                if same and memo is not None and memo.nodes.get(name) is node:
                    usable[name] = memo.usable[name]
                else:
                    usable[name] = np.array([_usable(m, devices, _slots(node)) for m in shapes])
            room = np.zeros(len(shapes))
            for values in usable.values():
                room += values
            nodes = list(devices.nodes.values())
            sizes = np.array([_size(m, devices, nodes) for m in shapes])
            weights = np.array(devices.demand.weights)
            price = weights * sizes / np.maximum(room, np.maximum(sizes, 1e-9))
            self._memo = memo = _Memo(devices, shapes, devices.nodes, usable, price)
            return memo


def _names(snapshot: Snapshot, rows: IntArray) -> list[str | None]:
    by_row = {row: name for name, row in snapshot.columns.rows.items()}
    return [by_row.get(r) for r in rows.tolist()]
