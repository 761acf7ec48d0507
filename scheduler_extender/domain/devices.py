"""Devices of Dynamic Resource Allocation (``resource.k8s.io/v1``), as placement sees them.

kube-scheduler's DynamicResources plugin allocates devices: it reads
ResourceSlices (each node's devices, published by a DRA driver), DeviceClasses
(which devices a class means) and ResourceClaims (what pods ask for), and
writes the chosen devices into the claim's ``status.allocation``. The extender
never allocates: it keeps the same objects, views per node and per device
what is left after the allocations written so far (``DeviceBook``, kept
incrementally, frozen into ``Devices`` with each snapshot), and uses that to
close nodes that certainly cannot satisfy a pod's claims (``filtering.py``) and
to score nodes by what the placement leaves of each device
(``scoring/device_packing.py``, ``scoring/device_popularity.py``).

Devices are shared in two ways, both modelled here:

* **consumable capacity** (KEP-5075): a device with ``allowMultipleAllocations``
  is allocated to several claims, each consuming part of its capacity (e.g.
  ``memory``); its free capacity is its capacity minus what the allocation
  results say they consume (``consumedCapacity``);
* **partitions** (KEP-4815, MIG-like): several devices of a pool consume
  counters of one counter set (``consumesCounters`` of the ``sharedCounters``
  that a slice of the same pool publishes; in ``resource.k8s.io/v1`` a slice
  carries devices or counters, not both); a device is available only while the
  counters it needs are not used up by the partitions already allocated.

Selectors are CEL expressions that only the API server and kube-scheduler
evaluate in full. The extender reads the common conjunctive forms
(``device.driver == "x"``, ``device.attributes["dom"].name == v``) and treats
any other clause as matching every device: its view of a class is a superset
of the true one, so its rule can only be more permissive than kube-scheduler,
never contradict it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from scheduler_extender.domain.shapes import ShapeMix

AttributeValue = str | int | bool

# The attributes that matter for GPUs, by their unqualified names (fake driver and NVIDIA's).
PRODUCT_ATTRIBUTE = "productName"
MEMORY_CAPACITY = "memory"
CLIQUE_ATTRIBUTE = "clique"

_EMPTY_INTS: Mapping[str, int] = MappingProxyType({})


def _qualify(driver: str, name: str) -> str:
    """An attribute or capacity name with its domain (unqualified names are the driver's)."""
    return name if "/" in name else f"{driver}/{name}"


# -- selectors ---------------------------------------------------------------------------------
_STRING = r'"((?:[^"\\]|\\.)*)"'
_DRIVER = re.compile(r"^device\.driver\s*==\s*" + _STRING + r"$")
_ATTRIBUTE = re.compile(
    r'^device\.attributes\["([^"]+)"\](?:\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\])'
    r"\s*==\s*(" + _STRING + r"|-?\d+|true|false)$"
)


@dataclass(frozen=True, slots=True)
class Selector:
    """The understood part of one CEL selector: driver and attribute equalities (ANDed)."""

    driver: str | None = None
    attributes: tuple[tuple[str, AttributeValue], ...] = ()  # qualified name -> value
    exact: bool = True  # False: some clause was not understood (read as always true)

    def matches(self, device: Device) -> bool:
        if self.driver is not None and device.driver != self.driver:
            return False
        return all(device.attribute(k) == v for k, v in self.attributes)


def parse_selector(expression: str) -> Selector:
    """The clauses of ``a && b && ...`` that are plain equalities on driver or attributes."""
    driver: str | None = None
    attributes: list[tuple[str, AttributeValue]] = []
    exact = True
    if "||" in expression or "!" in expression.replace("!=", ""):
        return Selector(exact=False)  # a disjunction or negation: read as matching anything
    for raw in expression.split("&&"):
        clause = raw.strip().strip("()").strip()
        if m := _DRIVER.match(clause):
            if driver is not None and driver != m.group(1):
                return Selector(driver=m.group(1), attributes=(("", ""),))  # matches nothing
            driver = m.group(1)
        elif m := _ATTRIBUTE.match(clause):
            domain, name = m.group(1), m.group(2) or m.group(3)
            literal = m.group(4)
            value: AttributeValue
            if m.group(5) is not None:
                value = m.group(5)
            elif literal in ("true", "false"):
                value = literal == "true"
            else:
                value = int(literal)
            attributes.append((f"{domain}/{name}", value))
        else:
            exact = False
    return Selector(driver, tuple(attributes), exact)


# -- devices and slices ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Counters:
    """What a partition consumes of one counter set of its slice."""

    counter_set: str
    amounts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Device:
    """One device of a ResourceSlice."""

    driver: str
    pool: str
    name: str
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)  # qualified names
    capacity: Mapping[str, int] = field(default_factory=dict)  # unqualified names
    # A claim that requests no amount of a capacity consumes this much of it (requestPolicy
    # default); a capacity without one is consumed whole.
    default_consumption: Mapping[str, int] = field(default_factory=dict)
    shared: bool = False  # allowMultipleAllocations: consumable capacity (KEP-5075)
    consumes: tuple[Counters, ...] = ()  # partitions (KEP-4815)

    @property
    def key(self) -> DeviceKey:
        return (self.driver, self.pool, self.name)

    def attribute(self, name: str) -> AttributeValue | None:
        return self.attributes.get(_qualify(self.driver, name))

    @property
    def product(self) -> str | None:
        value = self.attribute(PRODUCT_ATTRIBUTE)
        return str(value) if value is not None else None

    @property
    def clique(self) -> str | None:
        value = self.attribute(CLIQUE_ATTRIBUTE)
        return str(value) if value is not None else None

    def consumption(self, requested: Mapping[str, int]) -> Mapping[str, int]:
        """What one allocation requesting ``requested`` takes of a shared device."""
        return {
            name: requested.get(name, self.default_consumption.get(name, total))
            for name, total in self.capacity.items()
        }


DeviceKey = tuple[str, str, str]  # driver, pool, device


@dataclass(frozen=True, slots=True)
class DeviceSlice:
    """A ResourceSlice: devices of one pool, local to ``node`` ("" for network-attached)."""

    name: str
    driver: str
    pool: str
    node: str = ""
    generation: int = 0
    devices: tuple[Device, ...] = ()
    counter_sets: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


# -- claims and classes ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """One way to satisfy a request: an ``exactly`` request or a ``firstAvailable`` entry."""

    device_class: str
    count: int = 1
    all_devices: bool = False  # allocationMode All
    capacity: Mapping[str, int] = field(default_factory=dict)  # capacity.requests
    selectors: tuple[Selector, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    name: str
    choices: tuple[DeviceChoice, ...]  # the first that can be satisfied is taken


@dataclass(frozen=True, slots=True)
class AllocatedDevice:
    """One entry of ``status.allocation.devices.results``."""

    request: str
    driver: str
    pool: str
    device: str
    share_id: str = ""
    consumed: Mapping[str, int] = field(default_factory=dict)  # consumedCapacity

    @property
    def key(self) -> DeviceKey:
        return (self.driver, self.pool, self.device)


@dataclass(frozen=True, slots=True)
class Claim:
    namespace: str
    name: str
    uid: str = ""
    requests: tuple[DeviceRequest, ...] = ()
    allocation: tuple[AllocatedDevice, ...] | None = None  # None: not allocated yet
    reserved_for: tuple[str, ...] = ()  # pod UIDs
    # For a claim generated from a template: the pod that owns it and its claim entry's name.
    owner_uid: str = ""
    pod_claim_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def allocated(self) -> bool:
        return self.allocation is not None


@dataclass(frozen=True, slots=True)
class DeviceClass:
    name: str
    selectors: tuple[Selector, ...] = ()
    extended_resource: str = ""  # KEP-5004: pods requesting this resource get such devices


@dataclass(frozen=True, slots=True)
class PodClaim:
    """An entry of ``pod.spec.resourceClaims``, with the generated claim's name if known."""

    name: str
    claim_name: str = ""  # resourceClaimName, or the generated name from the pod's status
    template_name: str = ""


# -- the per-node view -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceState:
    """One device with what the allocations written so far leave of it."""

    device: Device
    node: str
    slice_name: str
    allocations: int  # allocation results naming it
    free: Mapping[str, int]  # capacity minus consumed (whole capacity when never allocated)
    available: bool  # a partition whose counters are not used up, and a device not exclusively held
    # The agents of the pods its allocations are reserved for, one entry per such pod.
    agents: tuple[str, ...] = ()

    @property
    def untouched(self) -> bool:
        return self.allocations == 0 and self.available

    def fits_share(self, amounts: Mapping[str, int]) -> bool:
        """Whether one more allocation taking ``amounts`` fits (shared devices only)."""
        if not self.device.shared or not self.available:
            return False
        wanted = self.device.consumption(amounts)
        return all(self.free.get(name, 0) >= amount for name, amount in wanted.items())

    def copies(self, amounts: Mapping[str, int], most: int) -> int:
        """How many allocations taking ``amounts`` the device still holds (at most ``most``)."""
        if not self.fits_whole(amounts):
            return 0
        if not self.device.shared:
            return 1
        wanted = [(n, a) for n, a in self.device.consumption(amounts).items() if a > 0]
        if not wanted:
            return most
        return min(most, min(self.free.get(n, 0) // a for n, a in wanted))

    def fits_whole(self, amounts: Mapping[str, int]) -> bool:
        """Whether the device can be allocated to a claim asking for ``amounts`` of capacity."""
        if self.device.shared:
            return self.fits_share(amounts)
        return self.untouched and all(
            self.device.capacity.get(name, 0) >= a for name, a in amounts.items()
        )


@dataclass(frozen=True, slots=True)
class NodeDevices:
    """The devices local to one node, in the order their slices and drivers list them."""

    node: str
    devices: tuple[DeviceState, ...]
    # What ``choice_fits`` answered on this view (frozen: a change makes a new one), per
    # choice, with the classes it was answered under. Replicas of one template ask alike and
    # a bind changes one node, so a filter finds most of its answers here.
    answers: dict[tuple[object, ...], tuple[Mapping[str, DeviceClass], bool]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def summary(self) -> DeviceSummary:
        whole = sum(1 for d in self.devices if d.untouched)
        shared = sum(1 for d in self.devices if d.device.shared and d.allocations)
        return DeviceSummary(len(self.devices), whole, shared)


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    devices: int
    untouched: int  # devices no allocation touches
    shared_in_use: int  # shared devices holding at least one allocation


@dataclass(frozen=True, slots=True)
class Needs:
    """The mean cpu (millicores) and memory (bytes) the pod of one request of a shape asks
    (learned by ``device_needs.NeedsBook``)."""

    cpu: float
    memory: float


NO_NEEDS: Mapping[DeviceShape, Needs] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Devices:
    """The frozen DRA view a snapshot carries."""

    nodes: Mapping[str, NodeDevices] = field(default_factory=dict)
    classes: Mapping[str, DeviceClass] = field(default_factory=dict)
    claims: Mapping[str, Claim] = field(default_factory=dict)  # namespace/name -> claim
    # Devices of slices that are not local to one node (network-attached): the rule has no
    # opinion on a class that may use them.
    detached: tuple[Device, ...] = ()
    # Where each allocated device is (for the bind re-check): device key -> node ("" detached).
    located: Mapping[DeviceKey, str] = field(default_factory=dict)
    # The device requests likely to come: recent and pending shapes (``DeviceShape``).
    demand: ShapeMix[DeviceShape] = field(default_factory=ShapeMix)
    # What the pods of each shape ask besides: cpu and memory (``device_needs.py``).
    needs: Mapping[DeviceShape, Needs] = field(default_factory=lambda: NO_NEEDS)
    # pod UID -> keys of the claims the pod owns (generated from its templates, or made by
    # kube-scheduler for its extended resources, KEP-5004).
    owned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.nodes or self.claims)

    def of(self, node: str) -> NodeDevices | None:
        return self.nodes.get(node)

    def claims_of(self, namespace: str, pod_claims: Iterable[PodClaim]) -> list[Claim | None]:
        """The pod's claims (None where the claim is not known yet)."""
        out: list[Claim | None] = []
        for entry in pod_claims:
            out.append(
                self.claims.get(f"{namespace}/{entry.claim_name}") if entry.claim_name else None
            )
        return out


NO_DEVICES = Devices()


def freeze_devices(
    slices: Iterable[DeviceSlice],
    claims: Iterable[Claim],
    classes: Iterable[DeviceClass],
    demand: ShapeMix[DeviceShape] | None = None,
) -> Devices:
    """The per-node, per-device view of the slices after the claims' allocations, from scratch.

    ``DeviceBook`` keeps the same view incrementally (and must agree with this).
    """
    book = DeviceBook()
    book.replace_slices(list(slices))
    book.replace_claims(list(claims))
    book.replace_classes(list(classes))
    return book.freeze(demand)


def current_slices(slices: Iterable[DeviceSlice]) -> list[DeviceSlice]:
    """The slices of each pool's newest generation, in a fixed order (node, driver, pool, name).

    When a driver replaces a pool, both generations may be listed for a while; only the
    newest counts, as in kube-scheduler.
    """
    listed = list(slices)
    newest: dict[tuple[str, str], int] = {}
    for s in listed:
        key = (s.driver, s.pool)
        newest[key] = max(newest.get(key, s.generation), s.generation)
    return sorted(
        (s for s in listed if s.generation == newest[(s.driver, s.pool)]),
        key=lambda s: (s.node, s.driver, s.pool, s.name),
    )


def node_devices(
    node: str,
    slices: Iterable[DeviceSlice],
    taken: Mapping[DeviceKey, list[AllocatedDevice]],
    agents: Mapping[DeviceKey, tuple[str, ...]] | None = None,
) -> NodeDevices:
    """One node's devices (from its current slices) after the allocation results ``taken``;
    ``agents``: per device, the agents of the pods holding it.

    Counter sets belong to a pool: in ``resource.k8s.io/v1`` a slice carries either devices
    or shared counters, and the partitions of one slice consume the counters another slice
    of the same pool publishes.
    """
    listed = list(slices)
    counter_sets: dict[tuple[str, str], dict[str, Mapping[str, int]]] = {}
    used: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for s in listed:
        pool = (s.driver, s.pool)
        counter_sets.setdefault(pool, {}).update(s.counter_sets)
        _count_used(s, taken, used.setdefault(pool, {}))
    states: list[DeviceState] = []
    for s in listed:
        pool = (s.driver, s.pool)
        states.extend(
            _device_state(
                s,
                device,
                taken.get(device.key, []),
                counter_sets.get(pool, {}),
                used.get(pool, {}),
                agents.get(device.key, ()) if agents else (),
            )
            for device in s.devices
        )
    return NodeDevices(node, tuple(states))


class DeviceBook:
    """The DRA objects a cluster cache holds, frozen into ``Devices``; not thread-safe.

    Kept incrementally: a claim's allocation changing rebuilds only the nodes of the devices
    it names, so a burst of allocations (one per bind) costs per node, not per cluster.
    Slices change rarely (a driver starting, stopping or replacing a pool): they rebuild
    the index of which devices are where, and the nodes whose slices changed.
    """

    def __init__(self) -> None:
        self._slices: dict[str, DeviceSlice] = {}
        self._claims: dict[str, Claim] = {}
        self._classes: dict[str, DeviceClass] = {}
        # device -> claim key -> its allocation results on that device
        self._taken: dict[DeviceKey, dict[str, list[AllocatedDevice]]] = {}
        self._owned: dict[str, set[str]] = {}  # pod UID -> keys of the claims it owns
        self._reserved: dict[str, set[str]] = {}  # pod UID -> keys of claims reserved for it
        self._by_node: dict[str, list[DeviceSlice]] = {}  # current slices per node
        self._located: dict[DeviceKey, str] = {}
        self._detached: tuple[Device, ...] = ()
        self._nodes: dict[str, NodeDevices] = {}
        self._dirty_nodes: set[str] = set()
        self._slices_dirty = False
        self._frozen_classes: Mapping[str, DeviceClass] = MappingProxyType({})
        self._classes_dirty = False

    # -- slices ---------------------------------------------------------------------------
    def upsert_slice(self, item: DeviceSlice) -> bool:
        if self._slices.get(item.name) == item:
            return False
        self._slices[item.name] = item
        self._slices_dirty = True
        return True

    def delete_slice(self, name: str) -> bool:
        if self._slices.pop(name, None) is None:
            return False
        self._slices_dirty = True
        return True

    def replace_slices(self, items: list[DeviceSlice]) -> None:
        self._slices = {s.name: s for s in items}
        self._slices_dirty = True

    # -- claims ---------------------------------------------------------------------------
    def claim(self, key: str) -> Claim | None:
        return self._claims.get(key)

    def claim_keys(self) -> list[str]:
        return list(self._claims)

    def upsert_claim(self, claim: Claim) -> bool:
        old = self._claims.get(claim.key)
        if old == claim:
            return False
        self._claims[claim.key] = claim
        self._retake(claim.key, old, claim)
        return True

    def delete_claim(self, key: str) -> Claim | None:
        old = self._claims.pop(key, None)
        if old is not None:
            self._retake(key, old, None)
        return old

    def replace_claims(self, items: list[Claim]) -> None:
        keep = {c.key for c in items}
        for key in [k for k in self._claims if k not in keep]:
            self.delete_claim(key)
        for claim in items:
            self.upsert_claim(claim)

    def _retake(self, key: str, old: Claim | None, new: Claim | None) -> None:
        if old is not None and old.owner_uid:
            owned = self._owned.get(old.owner_uid)
            if owned is not None:
                owned.discard(key)
                if not owned:
                    del self._owned[old.owner_uid]
        if new is not None and new.owner_uid:
            self._owned.setdefault(new.owner_uid, set()).add(key)
        for uid in old.reserved_for if old is not None else ():
            reserved = self._reserved.get(uid)
            if reserved is not None:
                reserved.discard(key)
                if not reserved:
                    del self._reserved[uid]
        for uid in new.reserved_for if new is not None else ():
            self._reserved.setdefault(uid, set()).add(key)
        for result in (old.allocation or ()) if old else ():
            holders = self._taken.get(result.key)
            if holders is not None and holders.pop(key, None) is not None and not holders:
                del self._taken[result.key]
            self._touch_device(result.key)
        for result in (new.allocation or ()) if new else ():
            self._taken.setdefault(result.key, {}).setdefault(key, []).append(result)
            self._touch_device(result.key)

    def touch_consumer(self, uid: str) -> bool:
        """The pod ``uid`` changed what ``agent_of`` says of it: its devices' nodes are rebuilt
        at the next freeze. False when no claim is reserved for it."""
        keys = self._reserved.get(uid)
        for key in keys or ():
            for result in self._claims[key].allocation or ():
                self._touch_device(result.key)
        return bool(keys)

    def _touch_device(self, key: DeviceKey) -> None:
        node = self._located.get(key)
        if node:
            self._dirty_nodes.add(node)

    # -- classes --------------------------------------------------------------------------
    def upsert_class(self, item: DeviceClass) -> bool:
        if self._classes.get(item.name) == item:
            return False
        self._classes[item.name] = item
        self._classes_dirty = True
        return True

    def delete_class(self, name: str) -> bool:
        if self._classes.pop(name, None) is None:
            return False
        self._classes_dirty = True
        return True

    def replace_classes(self, items: list[DeviceClass]) -> None:
        self._classes = {c.name: c for c in items}
        self._classes_dirty = True

    # -- the frozen view ------------------------------------------------------------------
    @property
    def counts(self) -> tuple[int, int, int]:
        """(slices, claims, classes) held."""
        return len(self._slices), len(self._claims), len(self._classes)

    def freeze(
        self,
        demand: ShapeMix[DeviceShape] | None = None,
        agent_of: Callable[[str], str | None] | None = None,
        needs: Mapping[DeviceShape, Needs] | None = None,
    ) -> Devices:
        """``agent_of``: the agent of a pod, by UID (None: not an agent's, or unknown)."""
        if self._slices_dirty:
            self._reindex()
        if self._classes_dirty:
            self._frozen_classes = MappingProxyType(dict(self._classes))
            self._classes_dirty = False
        for node in self._dirty_nodes:
            slices = self._by_node.get(node)
            if not slices:
                self._nodes.pop(node, None)
                continue
            taken = {
                device.key: [r for results in holders.values() for r in results]
                for s in slices
                for device in s.devices
                if (holders := self._taken.get(device.key))
            }
            agents = (
                {key: self._agents_of(self._taken[key], agent_of) for key in taken}
                if agent_of is not None
                else None
            )
            self._nodes[node] = node_devices(node, slices, taken, agents)
        self._dirty_nodes.clear()
        return Devices(
            nodes=MappingProxyType(dict(self._nodes)),
            classes=self._frozen_classes,
            claims=MappingProxyType(dict(self._claims)),
            detached=self._detached,
            located=MappingProxyType(dict(self._located)),
            demand=demand if demand is not None else ShapeMix(),
            needs=needs if needs is not None else NO_NEEDS,
            owned=MappingProxyType({u: tuple(sorted(k)) for u, k in self._owned.items()}),
        )

    def _agents_of(
        self, holders: Mapping[str, list[AllocatedDevice]], agent_of: Callable[[str], str | None]
    ) -> tuple[str, ...]:
        return tuple(
            agent
            for key in sorted(holders)
            for uid in self._claims[key].reserved_for
            if (agent := agent_of(uid)) is not None
        )

    def _reindex(self) -> None:
        by_node: dict[str, list[DeviceSlice]] = {}
        located: dict[DeviceKey, str] = {}
        detached: list[Device] = []
        for s in current_slices(self._slices.values()):
            for device in s.devices:
                located[device.key] = s.node
                if not s.node:
                    detached.append(device)
            if s.node:
                by_node.setdefault(s.node, []).append(s)
        changed = {
            n
            for n in by_node.keys() | self._by_node.keys()
            if by_node.get(n) != self._by_node.get(n)
        }
        self._by_node, self._located, self._detached = by_node, located, tuple(detached)
        self._dirty_nodes |= changed
        self._slices_dirty = False


def _count_used(
    s: DeviceSlice,
    taken: Mapping[DeviceKey, list[AllocatedDevice]],
    used: dict[str, dict[str, int]],
) -> None:
    """Add to ``used`` the counters the allocated devices of ``s`` consume, per counter set."""
    for device in s.devices:
        if device.key in taken:
            for consumed in device.consumes:
                into = used.setdefault(consumed.counter_set, {})
                for name, amount in consumed.amounts.items():
                    into[name] = into.get(name, 0) + amount


def _device_state(
    s: DeviceSlice,
    device: Device,
    results: list[AllocatedDevice],
    counter_sets: Mapping[str, Mapping[str, int]],
    used_counters: Mapping[str, Mapping[str, int]],
    agents: tuple[str, ...] = (),
) -> DeviceState:
    free = dict(device.capacity)
    if results and not device.shared:
        free = dict.fromkeys(device.capacity, 0)
    for result in results if device.shared else ():
        consumed = result.consumed or device.consumption(_EMPTY_INTS)
        for name, amount in consumed.items():
            if name in free:
                free[name] -= amount
    available = not (results and not device.shared)
    if not results:
        # A partition is available while its counters fit in what the others left.
        for counters in device.consumes:
            total = counter_sets.get(counters.counter_set, {})
            used = used_counters.get(counters.counter_set, {})
            if any(
                used.get(name, 0) + amount > total.get(name, 0)
                for name, amount in counters.amounts.items()
            ):
                available = False
    return DeviceState(
        device, s.node, s.name, len(results), MappingProxyType(free), available, agents
    )


# -- a pod's demand ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PodDevices:
    """What a pod's claims ask of a node: the requests still to be allocated, and the
    devices already allocated to it."""

    pending: tuple[DeviceRequest, ...] = ()
    allocated: tuple[AllocatedDevice, ...] = ()
    unknown: int = 0  # claims not in the cache yet (e.g. generated from a template just now)
    # A claim the pod owns but does not name: kube-scheduler made it for the pod's extended
    # resources (KEP-5004), so those are served by that claim's devices already.
    extended_claimed: bool = False

    def __bool__(self) -> bool:
        return bool(self.pending or self.allocated or self.unknown)


NO_POD_DEVICES = PodDevices()


def pod_devices(
    namespace: str, pod_claims: Iterable[PodClaim], devices: Devices, uid: str = ""
) -> PodDevices:
    """The pod's claims: those it names, and (given its ``uid``) those it owns besides, i.e.
    the claim kube-scheduler made for its extended resources (KEP-5004)."""
    pending: list[DeviceRequest] = []
    allocated: list[AllocatedDevice] = []
    unknown = 0
    entries = list(pod_claims)
    claims = devices.claims_of(namespace, entries)
    named = {f"{namespace}/{e.claim_name}" for e in entries if e.claim_name}
    owned = devices.owned.get(uid, ()) if uid else ()
    extended = [devices.claims[k] for k in owned if k not in named and k in devices.claims]
    for claim in [*claims, *extended]:
        if claim is None:
            unknown += 1
        elif claim.allocation is not None:
            allocated.extend(claim.allocation)
        else:
            pending.extend(claim.requests)
    if not pending and not allocated and not unknown:
        return NO_POD_DEVICES
    return PodDevices(tuple(pending), tuple(allocated), unknown, bool(extended))


def class_matches(choice: DeviceChoice, devices: Devices, device: Device) -> bool | None:
    """Whether ``device`` may serve ``choice``; None when the class is unknown."""
    device_class = devices.classes.get(choice.device_class)
    if device_class is None:
        return None
    return all(s.matches(device) for s in device_class.selectors) and all(
        s.matches(device) for s in choice.selectors
    )


def candidates(choice: DeviceChoice, devices: Devices, node: NodeDevices) -> list[DeviceState]:
    """The node's devices of the choice's class and selectors (a superset; see module doc)."""
    return [d for d in node.devices if class_matches(choice, devices, d.device)]


def choice_fits(choice: DeviceChoice, devices: Devices, node: NodeDevices | None) -> bool | None:
    """Whether the node has room for ``choice`` alone; None when the extender cannot tell."""
    if choice.device_class not in devices.classes:
        return None
    if devices.detached and any(class_matches(choice, devices, d) for d in devices.detached):
        return None  # network-attached devices may serve it: kube-scheduler knows better
    if choice.all_devices:
        return None
    if node is None:
        return False
    # Capacities in the order the claim lists them: another order is only a miss.
    key = (choice.device_class, choice.count, choice.selectors, *choice.capacity.items())
    known = node.answers.get(key)
    if known is not None and known[0] is devices.classes:
        return known[1]
    # A shared device counts for as many of the request's devices as its free capacity
    # holds: whether the allocator may give one request the same device twice is not this
    # rule's to decide, and counting it so can only let more through.
    fitting = 0
    fits = False
    for state in candidates(choice, devices, node):
        fitting += state.copies(choice.capacity, choice.count)
        if fitting >= choice.count:
            fits = True
            break
    node.answers[key] = (devices.classes, fits)
    return fits


def request_fits(request: DeviceRequest, devices: Devices, node: NodeDevices | None) -> bool:
    """False only when no choice of ``request`` can be satisfied on the node (a certainty)."""
    return any(choice_fits(c, devices, node) is not False for c in request.choices)


def predict_allocation(
    request: DeviceRequest, devices: Devices, node: NodeDevices
) -> tuple[tuple[int, Mapping[str, int]], ...]:
    """Where kube-scheduler's allocator is expected to put ``request`` on the node.

    The allocator takes devices in the order the slices list them, the first that fit; so
    does this. Returns (index into ``node.devices``, consumption) per device taken; empty
    when the request does not fit or cannot be told.
    """
    for choice in request.choices:
        if choice_fits(choice, devices, node) is not True:
            continue
        chosen: list[tuple[int, Mapping[str, int]]] = []
        for i, state in enumerate(node.devices):
            if len(chosen) == choice.count:
                break
            if class_matches(choice, devices, state.device) and state.fits_whole(choice.capacity):
                if state.device.shared:
                    chosen.append((i, state.device.consumption(choice.capacity)))
                else:
                    chosen.append((i, dict(state.device.capacity)))
        return tuple(chosen)
    return ()


# -- the demand for devices --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceShape:
    """One shape of device request: how many devices of a class, and how much of each.

    ``capacity`` empty: whole devices. Learned by a ``shapes.ShapeBook`` from the claims the
    cache sees, as the GPU pods' shapes are (``demand.py``).
    """

    device_class: str
    count: int = 1
    capacity: tuple[tuple[str, int], ...] = ()  # per device

    @property
    def gpus(self) -> float:
        return float(self.count)

    @property
    def shares(self) -> bool:
        return bool(self.capacity)


def device_shape(request: DeviceRequest) -> DeviceShape | None:
    """The shape of ``request`` (its first choice); None for allocationMode All."""
    if not request.choices or request.choices[0].all_devices:
        return None
    choice = request.choices[0]
    return DeviceShape(
        choice.device_class, max(choice.count, 1), tuple(sorted(choice.capacity.items()))
    )
