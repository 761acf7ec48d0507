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
the allocator picks: first fit in the order the slices list the devices, the
rule of ``devices.predict_allocation``, here on virtual slots (``_place``) so
that a pod's several requests take devices one after the other. As in FGD,
each shape's loss counts by how often it is asked for (its share of the
learned demand, recent and pending):

    cost(node) = sum over m of weight(m) x (usable(m) before - usable(m) after)

(Pricing each shape by its scarcity instead, weight x size / the room the
cluster has for it as ``demand_packing`` does for whole GPUs, left more GPUs
unallocated on the production trace's sharing setting: 3.7-3.9% against 3.5%
on 400 nodes offline, 3.9% against 3.6% through the real kube-scheduler; on
the whole fleet, offline, both leave about 5%, and scarcity binds more 8-GPU
pods, 27 of 50 against 23. See BENCHMARKS.md.)

Devices are not all a request needs: its pod needs the node's cpu and memory
too (FGD counts a node's free GPUs as fragments for a task whose cpu the node
cannot hold). A request does not say what cpu its pod asks for, but the pods
do: each shape comes with the mean cpu and memory of the pods seen asking for
it (``Devices.needs``, ``device_needs.py``). A shape no pod has been seen with
yet falls back on the cluster's ratio: the cpu (and memory) requested on the
nodes with devices per device unit allocated there. The room usable by *m* on
a node is then capped by the copies of *m* its free cpu and memory could feed,
and a placement that leaves a node's devices without the cpu to use them loses
that room. (On the production trace, sharing pods ask for up to 12 cores for
half a GPU: stacking them without the cap ran nodes out of cpu with GPUs still
free. With the ratio alone an 8-GPU request came out at 87 cores, more than a
96-core node has free once any pod runs there, so no 8-GPU node was kept whole;
see BENCHMARKS.md.)

The pod goes where it destroys the least room in demand. Among equal costs
(and when nothing was learned yet) the node whose devices are fullest after
the placement wins, so shares stack on devices already shared and whole
devices stay whole.

Pods with claims still to be allocated are scored as above (``Audience.DEVICES``);
a pod that asks for no GPU at all, in a cluster with devices, by what its cpu and
memory cost the room in demand (the cap above), as ``demand_packing`` places such
pods for whole GPUs: without it they spread over the largest nodes and leave no
node the cpu an 8-GPU pod needs.

Cost: a fleet has thousands of devices of a few kinds (``_Kinds``), each in one
of a few states, so what a device offers the shapes is worked out once per kind
and state, and what a placement does once per node makeup (its devices' kinds
and states, in order). A bind changes one node's view, and only that node is
recounted; new shapes recount every node, cheaply (see BENCHMARKS.md).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from scheduler_extender.domain.columns import Columns, FloatArray, IntArray
from scheduler_extender.domain.devices import (
    Device,
    DeviceRequest,
    Devices,
    DeviceShape,
    DeviceState,
    NodeDevices,
    class_matches,
    pod_devices,
)
from scheduler_extender.domain.devices import DeviceChoice as Choice
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.resources import CPU, MEMORY
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral

# Share of the score that goes to filling the fullest node among equally costly ones.
FILL_SHARE = 0.1
# Entries kept in each of device_packing's tables of kinds, states, makeups and effects
# (cleared when over: they only save work).
MAX_KEPT = 65536


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


def _slot(state: DeviceState) -> _Slot:
    return _Slot(state, dict(state.free), state.allocations > 0)


def _slots(node: NodeDevices) -> list[_Slot]:
    return [_slot(d) for d in node.devices]


def _place(request: DeviceRequest, devices: Devices, slots: Sequence[_Slot]) -> list[int] | None:
    """Take ``request``'s devices as the allocator would (first fit): the slots taken, or None
    when it does not fit."""
    for choice in request.choices:
        if choice.all_devices:
            continue
        chosen = [
            i
            for i, s in enumerate(slots)
            if class_matches(choice, devices, s.state.device) and s.fits(choice.capacity)
        ][: choice.count]
        if len(chosen) == choice.count:
            for i in chosen:
                slots[i].take(choice.capacity)
            return chosen
    return None


class _Kinds:
    """Devices by kind, and nodes by the kinds and states of their devices.

    A fleet has thousands of devices of a few kinds, each in one of a few states,
    and nodes of a few such makeups: what a device or a node offers the learned
    shapes is worked out once per kind and state, or per makeup, not per device or
    node. A kind is all of a device but its pool and name: class selectors read its
    driver and attributes, requests its capacity. Kinds do not depend on the shapes,
    so they outlive them.
    """

    def __init__(self) -> None:
        self._kinds: dict[int, tuple[Device, Hashable]] = {}  # id(device) -> kind
        self._makeups: dict[tuple[Hashable, ...], int] = {}
        self._next = 0  # makeup ids are never reused, so a kept id never names another

    def state(
        self, device: Device, available: bool, taken: bool, free: Mapping[str, int]
    ) -> Hashable:
        """The key of a device in a state: its kind and what is left of it."""
        return (self._kind(device), available, taken, tuple(free.items()))

    def makeup(self, states: tuple[Hashable, ...]) -> int:
        """An id for a node's devices, in order, in their states."""
        known = self._makeups.get(states)
        if known is None:
            if len(self._makeups) > MAX_KEPT:
                self._makeups.clear()
            known = self._makeups[states] = self._next
            self._next += 1
        return known

    def _kind(self, device: Device) -> Hashable:
        known = self._kinds.get(id(device))
        if known is not None and known[0] is device:
            return known[1]
        if len(self._kinds) > MAX_KEPT * 16:
            self._kinds.clear()
        kind = (device.driver, tuple(sorted(device.attributes.items())),
                tuple(device.capacity.items()), tuple(device.default_consumption.items()),
                device.shared, device.consumes)  # fmt: skip
        self._kinds[id(device)] = (device, kind)  # the device is held: its id is not reused
        return kind


@dataclass(frozen=True, slots=True)
class _Effect:
    """What placing a pod's pending requests does to a node of one makeup."""

    fill: float  # the node's devices' mean fill after
    gained: IntArray | None  # copies per shape gained (negative: lost); None: it does not fit


@dataclass(frozen=True, slots=True)
class _Shapes:
    """The learned device requests (K shapes), with what pricing and counting them needs."""

    shapes: tuple[DeviceShape, ...]
    choices: tuple[Choice, ...]  # each shape as a request choice
    counts: IntArray  # K: devices per request
    units: FloatArray  # K: device units one device of a request takes (a share: its fraction)
    kinds: _Kinds
    # Worked out for these shapes: per device state, its copies per shape and its fill;
    # per (node makeup, the pod's pending requests), the placement's effect.
    answers: dict[Hashable, tuple[IntArray, float]] = field(default_factory=dict)
    effects: dict[tuple[int, str], _Effect] = field(default_factory=dict)

    def of_device(self, devices: Devices, state: DeviceState) -> tuple[Hashable, IntArray, float]:
        """The device's state key, its copies per shape and its fill."""
        key = self.kinds.state(state.device, state.available, state.allocations > 0, state.free)
        known = self.answers.get(key)
        if known is None:
            known = self._answer(devices, key, _slot(state))
        return key, known[0], known[1]

    def copies(self, devices: Devices, slot: _Slot) -> IntArray:
        """Per shape, the copies (device-sized pieces) of it this one device could still take."""
        state = slot.state
        key = self.kinds.state(state.device, state.available, slot.taken, slot.free)
        known = self.answers.get(key)
        return (known if known is not None else self._answer(devices, key, slot))[0]

    def _answer(self, devices: Devices, key: Hashable, slot: _Slot) -> tuple[IntArray, float]:
        if len(self.answers) > MAX_KEPT:
            self.answers.clear()
        answer = self.answers[key] = (self._copies(devices, slot), slot.fill())
        return answer

    def _copies(self, devices: Devices, slot: _Slot) -> IntArray:
        out = np.zeros(len(self.shapes), dtype=np.int64)
        for k, (shape, choice) in enumerate(zip(self.shapes, self.choices, strict=True)):
            if not class_matches(choice, devices, slot.state.device):
                continue
            if not shape.shares:
                out[k] = 1 if slot.untouched else 0
            elif slot.fits(choice.capacity):
                device = slot.state.device
                if device.shared:
                    wanted = device.consumption(choice.capacity)
                    out[k] = min(
                        (slot.free.get(n, 0) // a for n, a in wanted.items() if a > 0), default=1
                    )
                else:
                    out[k] = 1
        return out

    def effect(
        self, devices: Devices, node: NodeDevices, makeup: int, pending: Sequence[DeviceRequest],
        asked: str,
    ) -> _Effect:  # fmt: skip
        """What placing ``pending`` (``asked`` says it) does to ``node``, of ``makeup``."""
        key = (makeup, asked)
        known = self.effects.get(key)
        if known is None:
            if len(self.effects) > MAX_KEPT:
                self.effects.clear()
            known = self.effects[key] = self._effect(devices, node, pending)
        return known

    def _effect(
        self, devices: Devices, node: NodeDevices, pending: Sequence[DeviceRequest]
    ) -> _Effect:
        slots = _slots(node)
        taken: set[int] = set()
        for request in pending:
            chosen = _place(request, devices, slots)
            if chosen is None:
                return _Effect(0.0, None)
            taken.update(chosen)
        fill = sum(s.fill() for s in slots) / len(slots)
        # Only the devices taken change: what they can take after less what they could before.
        gained = np.zeros(len(self.shapes), dtype=np.int64)
        for j in taken:
            gained += self.copies(devices, slots[j])
            gained -= self.copies(devices, _slot(node.devices[j]))
        return _Effect(fill, gained)

    def usable(self, copies: IntArray) -> FloatArray:
        """Device units of the whole requests of each shape that ``copies`` make."""
        whole: FloatArray = (copies // self.counts) * self.counts * self.units
        return whole


def _shapes(devices: Devices, kinds: _Kinds) -> _Shapes:
    shapes = devices.demand.classes
    choices = tuple(Choice(m.device_class, m.count, capacity=dict(m.capacity)) for m in shapes)
    return _Shapes(
        shapes,
        choices,
        np.array([m.count for m in shapes], dtype=np.int64),
        np.array([_unit(m, devices) for m in shapes], dtype=np.float64),
        kinds=kinds,
    )


def _unit(shape: DeviceShape, devices: Devices) -> float:
    """The fraction of a device of its class one device of ``shape`` takes (1 when whole)."""
    if not shape.shares:
        return 1.0
    capacity = dict(shape.capacity)
    for node in devices.nodes.values():
        for state in node.devices:
            device = state.device
            if class_matches(Choice(shape.device_class), devices, device):
                fractions = [
                    a / device.capacity[n] for n, a in capacity.items() if device.capacity.get(n)
                ]
                return max(fractions) if fractions else 1.0
    return 1.0


def _count(shapes: _Shapes, devices: Devices, node: NodeDevices) -> tuple[IntArray, float, int]:
    """The node's copies per shape, the device units its allocations hold, and its makeup."""
    copies = np.zeros(len(shapes.shapes), dtype=np.int64)
    fill = 0.0
    states = []
    for device in node.devices:
        state, counted, filled = shapes.of_device(devices, device)
        copies += counted
        fill += filled
        states.append(state)
    return copies, fill, shapes.kinds.makeup(tuple(states))


@dataclass(frozen=True, slots=True)
class _Memo:
    devices: Devices
    shapes: _Shapes
    nodes: Mapping[str, NodeDevices]  # the frozen node views ``copies`` was counted on
    copies: Mapping[str, IntArray]  # node -> copies per shape its devices could take
    price: FloatArray  # per shape: its share of the learned demand
    allocated: Mapping[str, float]  # node -> device units its allocations hold
    units: float  # their sum
    makeups: Mapping[str, int]  # node -> its makeup (``_Kinds.makeup``)
    # The rows of the nodes with devices, with the row index they were found in.
    kept_rows: list[tuple[Mapping[str, int], IntArray]] = field(default_factory=list)
    # Per row: the index of its node in a table of the copies per shape, and the table.
    kept_table: list[tuple[Mapping[str, int], IntArray, IntArray]] = field(default_factory=list)

    def rows_in(self, columns: Columns) -> IntArray:
        """The rows of the nodes with devices (looked up again only when nodes come or go:
        the row index is then a new mapping)."""
        if self.kept_rows and self.kept_rows[0][0] is columns.rows:
            return self.kept_rows[0][1]
        rows = columns.rows_of(self.allocated)
        rows = rows[rows >= 0]
        self.kept_rows[:] = [(columns.rows, rows)]
        return rows

    def copies_at(self, columns: Columns, rows: IntArray) -> tuple[IntArray, IntArray]:
        """The candidates at ``rows`` that have devices (their indexes in ``rows``) and their
        copies per shape, from a table by row kept while the row index stands."""
        if not (self.kept_table and self.kept_table[0][0] is columns.rows):
            names = list(self.copies)
            found = columns.rows_of(names)
            index = np.full(columns.size, -1, dtype=np.int64)
            index[found[found >= 0]] = np.flatnonzero(found >= 0)
            table = np.array([self.copies[n] for n in names], dtype=np.int64).reshape(
                len(names), len(self.shapes.shapes)
            )
            self.kept_table[:] = [(columns.rows, index, table)]
        _, index, table = self.kept_table[0]
        at = np.flatnonzero(index[rows] >= 0)
        copies: IntArray = table[index[rows[at]]]
        return at, copies


class DevicePacking:
    name = "device_packing"
    audience = Audience.DEVICES

    def __init__(self) -> None:
        self._memo: _Memo | None = None
        self._lock = threading.Lock()

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        snapshot = ctx.snapshot
        devices = snapshot.devices
        if len(rows) == 0 or not devices:
            return neutral(rows)
        if not pod.claims:
            asks_gpus = pod.requests.get(ctx.gpu_resource) > 0
            return neutral(rows) if asks_gpus else self._host_only(pod, rows, ctx)
        pending = pod_devices(pod.namespace, pod.claims, devices).pending
        if not pending:
            return neutral(rows)
        memo = self._memo_of(devices)
        shapes = memo.shapes
        asked = repr(pending)  # what a placement depends on, besides the node's makeup
        columns = snapshot.columns
        names = columns.names_of(rows)
        fill = np.zeros(len(rows))
        placed = np.zeros(len(rows), dtype=np.bool_)
        before: list[IntArray] = []  # per placed candidate: copies per shape
        gained: list[IntArray] = []
        with self._lock:
            for i, name in enumerate(names):
                node = devices.of(name) if name is not None else None
                if name is None or node is None or not node.devices:
                    continue
                effect = shapes.effect(devices, node, memo.makeups[name], pending, asked)
                if effect.gained is not None:
                    placed[i] = True
                    fill[i] = effect.fill
                    before.append(memo.copies[name])
                    gained.append(effect.gained)
        if not placed.any():
            return neutral(rows)
        at = np.flatnonzero(placed)
        copies = np.array(before)
        feeds = _Feeds.of(memo, columns, pod, rows)
        usable_before = feeds.cap(shapes.usable(copies), at)
        usable_after = feeds.cap(shapes.usable(copies + np.array(gained)), at, placed=True)
        cost = np.zeros(len(rows))
        cost[at] = (usable_before - usable_after) @ memo.price
        low, high = float(cost[placed].min()), float(cost[placed].max())
        if high - low <= 1e-9 * max(abs(high), 1.0):
            scored: FloatArray = np.where(placed, fill, 0.0)
            return scored
        spread = (high - cost) / (high - low)
        scored = np.where(placed, (1.0 - FILL_SHARE) * spread + FILL_SHARE * fill, 0.0)
        return scored

    def _host_only(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        """A pod that asks for no device still takes cpu and memory that devices need: it
        goes where that costs the room in demand the least (nodes without devices, or whose
        devices are taken, cost nothing)."""
        memo = self._memo_of(ctx.snapshot.devices)
        columns = ctx.snapshot.columns
        feeds = _Feeds.of(memo, columns, pod, rows)
        at, copies = memo.copies_at(columns, rows)
        if feeds.needs is None or len(at) == 0:
            return neutral(rows)  # no cpu per device to go by yet, or no devices here
        usable = memo.shapes.usable(copies)
        cost = np.zeros(len(rows))
        cost[at] = (feeds.cap(usable, at) - feeds.cap(usable, at, placed=True)) @ memo.price
        low, high = float(cost.min()), float(cost.max())
        if high - low <= 1e-9 * max(abs(high), 1.0):
            return neutral(rows)
        scored: FloatArray = (high - cost) / (high - low)
        return scored

    def _memo_of(self, devices: Devices) -> _Memo:
        """Copies per shape and node, and the prices; only changed nodes are recounted.

        ``DeviceBook`` keeps a node's frozen view (the same object) while nothing on it
        changes, so a bind recounts one node, not the cluster.
        """
        with self._lock:
            memo = self._memo
            if memo is not None and memo.devices is devices:
                return memo
            same = (
                memo is not None
                and memo.shapes.shapes == devices.demand.classes
                and memo.devices.classes is devices.classes
            )
            if memo is not None and same:
                shapes = memo.shapes
            else:
                shapes = _shapes(devices, memo.shapes.kinds if memo is not None else _Kinds())
            copies: dict[str, IntArray] = {}
            allocated: dict[str, float] = {}
            makeups: dict[str, int] = {}
            for name, node in devices.nodes.items():
                if same and memo is not None and memo.nodes.get(name) is node:
                    counted = memo.copies[name], memo.allocated[name], memo.makeups[name]
                else:
                    counted = _count(shapes, devices, node)
                copies[name], allocated[name], makeups[name] = counted
            weights = np.array(devices.demand.weights, dtype=np.float64)
            price = weights / max(float(weights.sum()), 1e-9)
            self._memo = memo = _Memo(
                devices, shapes, devices.nodes, copies, price, allocated,
                sum(allocated.values()), makeups,
            )  # fmt: skip
            return memo


@dataclass(frozen=True, slots=True)
class _Feeds:
    """How much room in demand the candidates' free cpu and memory can feed.

    Per shape, the cpu and memory its request is expected to come with: what the pods of
    that shape asked (``Devices.needs``), else the cluster's ratio of what is requested on
    the nodes with devices to the device units allocated there, times the shape's size.
    None: neither is known yet (0 for one shape: no cap for it).
    """

    sizes: FloatArray  # K: device units per request
    needs: tuple[FloatArray, FloatArray] | None  # K: cpu, memory per request
    free: tuple[FloatArray, FloatArray]  # per candidate: free cpu, memory
    asked: tuple[float, float]  # the pod's own cpu and memory

    @staticmethod
    def of(memo: _Memo, columns: Columns, pod: Pod, rows: IntArray) -> _Feeds:
        shapes = memo.shapes
        sizes: FloatArray = shapes.counts * shapes.units
        free = (
            columns.free_of(CPU, rows).astype(np.float64),
            columns.free_of(MEMORY, rows).astype(np.float64),
        )
        asked = (float(pod.requests.get(CPU)), float(pod.requests.get(MEMORY)))
        ratios = (0.0, 0.0)
        if memo.units >= 1.0:
            nodes = memo.rows_in(columns)
            used = [
                float((columns.allocatable_of(r, nodes) - columns.free_of(r, nodes)).sum())
                for r in (CPU, MEMORY)
            ]
            ratios = (used[0] / memo.units, used[1] / memo.units)
        learned = memo.devices.needs
        if not learned and memo.units < 1.0:
            return _Feeds(sizes, None, free, asked)
        cpu, memory = ratios[0] * sizes, ratios[1] * sizes
        for i, shape in enumerate(shapes.shapes):
            if (need := learned.get(shape)) is not None:
                cpu[i], memory[i] = need.cpu, need.memory
        return _Feeds(sizes, (cpu, memory), free, asked)

    def cap(self, usable: FloatArray, at: IntArray, *, placed: bool = False) -> FloatArray:
        """``usable`` (candidates ``at`` x shapes), capped by what the candidates' cpu and
        memory (less the pod's own once it is ``placed``) can feed."""
        if self.needs is None:
            return usable
        fed = usable
        for need, free, asked in zip(self.needs, self.free, self.asked, strict=True):
            left = np.maximum(free[at] - asked if placed else free[at], 0.0)
            copies = np.floor(left[:, None] / np.maximum(need, 1.0)[None, :])
            fed = np.minimum(fed, copies * self.sizes[None, :])
        return fed
