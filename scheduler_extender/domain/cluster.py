"""Cluster accounting: what each node has allocated, and immutable snapshots of it.

``ClusterState`` is the single mutable model behind the watch-fed cache. It is
not thread-safe by itself; the cache adapter serialises writers. Readers never
touch it: they get a ``Snapshot``, an immutable view rebuilt only for the nodes
that changed since the previous one.

A pod counts against a node when the watch says it is bound there (and it is
not terminal), or when we bound it ourselves and the watch has not caught up
yet ("assumed"). An assumption that no watch event confirms within its
deadline expires, so a lost bind never leaks capacity for long.

A pod that preemption nominated to a node (``status.nominatedNodeName``) and
that is not bound yet counts nowhere, but snapshots list it under that node:
kube-scheduler holds its room there against pods of lower or equal priority
(see ``domain/filtering.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from scheduler_extender.domain.columns import ColumnBuilder, Columns
from scheduler_extender.domain.demand import (
    NO_DEMAND,
    Demand,
    DemandBook,
    DemandClass,
    demand_class,
    gpu_labels,
)
from scheduler_extender.domain.device_needs import NeedsBook
from scheduler_extender.domain.devices import (
    NO_DEVICES,
    Claim,
    DeviceBook,
    DeviceClass,
    Devices,
    DeviceShape,
    DeviceSlice,
    device_shape,
)
from scheduler_extender.domain.groups import group_of
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.resources import DEFAULT_GPU_RESOURCE, PODS, Resources
from scheduler_extender.domain.rules import NodeRule
from scheduler_extender.domain.shapes import DEFAULT_MEMORY, ShapeBook

# A node that does not declare a pod limit is not limited by pod count.
_UNLIMITED = 2**62


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node with what is allocated on it, frozen at snapshot time."""

    node: Node
    requested: Resources
    agents: Mapping[str, int]  # agent -> replicas on this node
    free_amounts: Mapping[str, int]  # allocatable - requested, per resource

    @property
    def name(self) -> str:
        return self.node.name

    def allocatable(self, resource: str) -> int:
        return self.node.allocatable.get(resource)

    def free(self, resource: str) -> int:
        return self.free_amounts.get(resource, 0)


@dataclass(frozen=True, slots=True)
class NominatedPod:
    """What a nominated, not yet bound pod holds on its node: the filter reads no more."""

    uid: str
    priority: int
    requests: Resources
    agent: str | None = None

    @staticmethod
    def of(pod: Pod) -> NominatedPod:
        return NominatedPod(pod.uid, pod.priority, pod.requests, pod.agent)


_NO_NOMINATIONS: Mapping[str, tuple[NominatedPod, ...]] = MappingProxyType({})
_NO_GROUPS: Mapping[str, Mapping[str, int]] = MappingProxyType({})
_NO_AGENT_SHAPES: Mapping[str, DemandClass] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the cluster used to answer one request."""

    nodes: Mapping[str, NodeState]
    columns: Columns
    agent_replicas: Mapping[str, int]  # agent -> non-terminal pods, placed or pending
    version: int = 0
    synced: bool = True
    # Rules published with the snapshot that close nodes to pods (domain/rules.py).
    rules: tuple[NodeRule, ...] = ()
    # node -> pods nominated to it; only nodes that have some.
    nominated: Mapping[str, tuple[NominatedPod, ...]] = field(
        default_factory=lambda: _NO_NOMINATIONS
    )
    # The GPU pods likely to come: recent and pending shapes (see domain/demand.py).
    demand: Demand = NO_DEMAND
    # agent -> the shape of its latest replica (what scaling it up would add).
    agent_shapes: Mapping[str, DemandClass] = field(default_factory=lambda: _NO_AGENT_SHAPES)
    # group -> node -> members placed there (see domain/groups.py); only groups with some.
    groups: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: _NO_GROUPS)
    # DRA: devices per node after the claims' allocations (see domain/devices.py).
    devices: Devices = NO_DEVICES

    def get(self, name: str) -> NodeState | None:
        return self.nodes.get(name)

    def with_unknown_nodes(self, nodes: Iterable[Node]) -> Snapshot:
        """This snapshot plus, as empty nodes, those it does not know yet.

        Used when kube-scheduler sends full node objects (nodeCacheCapable
        false) for nodes our watch has not delivered yet. Rebuilds the columns,
        which is slow, but so is that mode.
        """
        extra = {n.name: _NodeTotals(n).freeze() for n in nodes if n.name not in self.nodes}
        if not extra:
            return self
        merged = {**self.nodes, **extra}
        return replace(self, nodes=MappingProxyType(merged), columns=columns_of(merged))


def columns_of(states: Mapping[str, NodeState]) -> Columns:
    """Columns built from scratch (the incremental path must agree with this)."""
    builder = ColumnBuilder()

    def lookup(name: str) -> tuple[Mapping[str, int], Mapping[str, int]]:
        return states[name].node.allocatable.amounts, states[name].free_amounts

    agents: dict[str, dict[str, int]] = {}
    for name, state in states.items():
        builder.set_node(
            name,
            state.node.allocatable.amounts,
            state.free_amounts,
            lookup,
            gpu_labels(state.node.labels),
        )
        for agent, count in state.agents.items():
            agents.setdefault(agent, {})[name] = count
    for agent, where in agents.items():
        builder.set_agent(agent, where)
    return builder.freeze()


def empty_snapshot() -> Snapshot:
    return Snapshot(MappingProxyType({}), ColumnBuilder().freeze(), MappingProxyType({}))


@dataclass(slots=True)
class _NodeTotals:
    node: Node
    requested: dict[str, int] = field(default_factory=dict)
    agents: Counter[str] = field(default_factory=Counter)

    def add(self, pod: Pod, sign: int) -> None:
        for name, value in pod.requests.amounts.items():
            self.requested[name] = self.requested.get(name, 0) + sign * value
        if pod.agent:
            self.agents[pod.agent] += sign
            if self.agents[pod.agent] <= 0:
                del self.agents[pod.agent]

    def freeze(self) -> NodeState:
        allocatable = self.node.allocatable.amounts
        free = {
            name: allocatable.get(name, 0) - self.requested.get(name, 0)
            for name in allocatable.keys() | self.requested.keys()
        }
        if PODS not in allocatable:
            free[PODS] = _UNLIMITED
        return NodeState(
            node=self.node,
            requested=Resources.of(self.requested),
            agents=MappingProxyType(dict(self.agents)),
            free_amounts=MappingProxyType(free),
        )


@dataclass(frozen=True, slots=True)
class Assumption:
    pod: Pod
    node_name: str
    deadline: float


class ClusterState:
    """Mutable node/pod accounting fed by watch events and our own binds."""

    def __init__(
        self, *, gpu_resource: str = DEFAULT_GPU_RESOURCE, demand_memory: int = DEFAULT_MEMORY
    ) -> None:
        self._gpu_resource = gpu_resource
        self._demand = DemandBook(demand_memory)
        self._nodes: dict[str, _NodeTotals] = {}
        self._pods: dict[str, Pod] = {}  # uid -> latest watched pod
        self._uid_by_key: dict[str, str] = {}  # namespace/name -> uid
        self._assumed: dict[str, Assumption] = {}  # uid -> our bind, not yet watched
        self._placed: dict[str, tuple[str, Pod]] = {}  # uid -> (node, pod as accounted)
        self._agent_replicas: Counter[str] = Counter()
        self._agent_shapes: dict[str, DemandClass] = {}
        self._frozen_agent_shapes: Mapping[str, DemandClass] = _NO_AGENT_SHAPES
        self._agent_nodes: dict[str, Counter[str]] = {}  # agent -> node -> replicas
        self._nominations: dict[str, str] = {}  # uid -> node, of pods counted as nominated
        self._nominated: dict[str, dict[str, NominatedPod]] = {}  # node -> uid -> pod
        self._frozen_nominated: dict[str, tuple[NominatedPod, ...]] = {}
        self._dirty_nominated: set[str] = set()
        self._frozen: dict[str, NodeState] = {}
        self._columns = ColumnBuilder()
        self._dirty: set[str] = set()
        self._dirty_agents: set[str] = set()
        self._group_nodes: dict[str, Counter[str]] = {}  # group -> node -> members
        self._frozen_groups: Mapping[str, Mapping[str, int]] = _NO_GROUPS
        self._groups_dirty = False
        # DRA objects (resource.k8s.io/v1), frozen into one Devices view when they change.
        self._devices = DeviceBook()
        self._device_demand: ShapeBook[DeviceShape] = ShapeBook(demand_memory)
        self._device_needs = NeedsBook()
        self._frozen_devices = NO_DEVICES
        self._devices_dirty = False
        self._version = 0
        self._snapshot = empty_snapshot()
        self.synced = False

    # -- nodes -------------------------------------------------------------
    def upsert_node(self, node: Node) -> None:
        totals = self._nodes.get(node.name)
        if totals is not None and totals.node == node:
            return  # e.g. a heartbeat: nothing we account changed, keep the snapshot
        if totals is None:
            self._nodes[node.name] = totals = _NodeTotals(node)
            # Pods may have been watched before their node: account them now.
            for node_name, pod in self._placed.values():
                if node_name == node.name:
                    totals.add(pod, +1)
            self._dirty_agents.update(self._agent_nodes)  # agents' rows now resolve
        else:
            totals.node = node
        self._touch(node.name)

    def delete_node(self, name: str) -> None:
        if self._nodes.pop(name, None) is not None:
            self._frozen.pop(name, None)
            self._dirty.discard(name)
            self._columns.remove_node(name)
            self._dirty_agents.update(self._agent_nodes)
            self._version += 1

    def replace_nodes(self, nodes: list[Node]) -> None:
        """Relist: make the node set exactly ``nodes``."""
        keep = {n.name for n in nodes}
        for name in [n for n in self._nodes if n not in keep]:
            self.delete_node(name)
        for node in nodes:
            self.upsert_node(node)

    # -- pods --------------------------------------------------------------
    def upsert_pod(self, pod: Pod) -> None:
        old = self._pods.get(pod.uid)
        if old == pod:
            return  # e.g. a status update we do not read: keep the snapshot
        self._pods[pod.uid] = pod
        self._uid_by_key[pod.key] = pod.uid
        if (old is None or old.agent != pod.agent) and self._devices.touch_consumer(pod.uid):
            self._devices_changed()  # the agents on its devices
        if old is None and not pod.terminal:
            self._arrived(pod)
        if old is None and not pod.terminal and pod.agent:
            self._agent_replicas[pod.agent] += 1
        elif old is not None and not old.terminal and pod.terminal and old.agent:
            self._drop_agent(old.agent)
        if pod.node_name:
            self._assumed.pop(pod.uid, None)  # the watch confirms (or overrides) our bind
        if self._device_needs.pod_seen(pod, self._devices.claim):
            self._devices_changed()
        self._reaccount(pod.uid)

    def delete_pod(self, uid: str) -> None:
        self._device_needs.pod_gone(uid)
        old = self._pods.pop(uid, None)
        if old is not None:
            if self._uid_by_key.get(old.key) == uid:
                del self._uid_by_key[old.key]
            if not old.terminal and old.agent:
                self._drop_agent(old.agent)
        self._assumed.pop(uid, None)
        self._reaccount(uid)

    def replace_pods(self, pods: list[Pod]) -> None:
        """Relist: make the pod set exactly ``pods`` (assumptions are kept)."""
        keep = {p.uid for p in pods}
        for uid in [u for u in self._pods if u not in keep]:
            self.delete_pod(uid)
        for pod in pods:
            self.upsert_pod(pod)

    def pod(self, uid: str) -> Pod | None:
        return self._pods.get(uid)

    def find_pod(self, namespace: str, name: str) -> Pod | None:
        uid = self._uid_by_key.get(f"{namespace}/{name}")
        return self._pods.get(uid) if uid is not None else None

    def pods(self) -> Iterator[Pod]:
        return iter(self._pods.values())

    # -- DRA -------------------------------------------------------------
    def upsert_slice(self, item: DeviceSlice) -> None:
        if self._devices.upsert_slice(item):
            self._devices_changed()

    def delete_slice(self, name: str) -> None:
        if self._devices.delete_slice(name):
            self._devices_changed()

    def replace_slices(self, items: list[DeviceSlice]) -> None:
        self._devices.replace_slices(items)
        self._devices_changed()

    def upsert_claim(self, claim: Claim) -> None:
        old = self._devices.claim(claim.key)
        if not self._devices.upsert_claim(claim):
            return
        if old is None or old.uid != claim.uid:
            for request in claim.requests:
                if (shape := device_shape(request)) is not None:
                    self._device_demand.arrived(shape)
            for uid in self._device_needs.claim_seen(claim.key):
                if (seen := self._pods.get(uid)) is not None:
                    self._device_needs.pod_seen(seen, self._devices.claim)
        for request in claim.requests:
            waiting = None if claim.allocated else device_shape(request)
            self._device_demand.set_pending(f"{claim.uid}/{request.name}", waiting)
        self._devices_changed()

    def delete_claim(self, key: str) -> None:
        old = self._devices.delete_claim(key)
        if old is not None:
            for request in old.requests:
                self._device_demand.set_pending(f"{old.uid}/{request.name}", None)
            self._devices_changed()

    def replace_claims(self, items: list[Claim]) -> None:
        keep = {c.key for c in items}
        for key in [k for k in self._devices.claim_keys() if k not in keep]:
            self.delete_claim(key)
        for claim in items:
            self.upsert_claim(claim)
        self._devices_changed()

    def upsert_device_class(self, item: DeviceClass) -> None:
        if self._devices.upsert_class(item):
            self._devices_changed()

    def delete_device_class(self, name: str) -> None:
        if self._devices.delete_class(name):
            self._devices_changed()

    def replace_device_classes(self, items: list[DeviceClass]) -> None:
        self._devices.replace_classes(items)
        self._devices_changed()

    def _agent_of(self, uid: str) -> str | None:
        pod = self._pods.get(uid)
        return pod.agent if pod is not None else None

    def _devices_changed(self) -> None:
        self._devices_dirty = True
        self._version += 1

    def _freeze_devices(self) -> Devices:
        if self._devices_dirty:
            self._frozen_devices = self._devices.freeze(
                self._device_demand.freeze(), self._agent_of, self._device_needs.freeze()
            )
            self._devices_dirty = False
        return self._frozen_devices

    # -- our own binds -----------------------------------------------------
    def assume(self, pod: Pod, node_name: str, deadline: float) -> None:
        """Count ``pod`` on ``node_name`` until the watch confirms it or ``deadline``."""
        if pod.uid not in self._pods:
            self._pods[pod.uid] = pod
            self._uid_by_key[pod.key] = pod.uid
            self._arrived(pod)
            if pod.agent:
                self._agent_replicas[pod.agent] += 1
        self._assumed[pod.uid] = Assumption(pod, node_name, deadline)
        self._reaccount(pod.uid)

    def forget(self, uid: str) -> None:
        """Drop an assumption whose bind failed."""
        if self._assumed.pop(uid, None) is not None:
            self._reaccount(uid)

    def expire(self, now: float) -> list[Assumption]:
        expired = [a for a in self._assumed.values() if a.deadline <= now]
        for assumption in expired:
            self.forget(assumption.pod.uid)
        return expired

    @property
    def assumed_count(self) -> int:
        return len(self._assumed)

    def placement(self, uid: str) -> str | None:
        """The node a pod is accounted on, if any."""
        placed = self._placed.get(uid)
        return placed[0] if placed else None

    # -- snapshots ---------------------------------------------------------
    def snapshot(self) -> Snapshot:
        if (
            not self._dirty
            and not self._dirty_agents
            and not self._dirty_nominated
            and self._snapshot.version == self._version
        ):
            return self._snapshot
        for name in self._dirty:
            self._frozen[name] = self._nodes[name].freeze()
        # New nodes get rows in name order, not in the set's hash order, so a
        # given history of events always scores (and breaks ties) the same way.
        for name in sorted(self._dirty):
            state = self._frozen[name]
            self._columns.set_node(
                name,
                state.node.allocatable.amounts,
                state.free_amounts,
                self._amounts_of,
                gpu_labels(state.node.labels),
            )
        for agent in self._dirty_agents:
            self._columns.set_agent(agent, self._agent_nodes.get(agent, {}))
        self._freeze_nominated()
        self._dirty.clear()
        self._dirty_agents.clear()
        self._snapshot = Snapshot(
            nodes=MappingProxyType(dict(self._frozen)),
            columns=self._columns.freeze(),
            agent_replicas=MappingProxyType(dict(self._agent_replicas)),
            version=self._version,
            synced=self.synced,
            nominated=MappingProxyType(dict(self._frozen_nominated)),
            demand=self._demand.freeze(),
            agent_shapes=self._frozen_agent_shapes,
            groups=self._freeze_groups(),
            devices=self._freeze_devices(),
        )
        return self._snapshot

    def _freeze_groups(self) -> Mapping[str, Mapping[str, int]]:
        if self._groups_dirty:
            self._frozen_groups = MappingProxyType(
                {g: MappingProxyType(dict(where)) for g, where in self._group_nodes.items()}
            )
            self._groups_dirty = False
        return self._frozen_groups

    @property
    def counts(self) -> tuple[int, int]:
        """(nodes, pods) held."""
        return len(self._nodes), len(self._pods)

    @property
    def device_counts(self) -> tuple[int, int, int]:
        """(ResourceSlices, ResourceClaims, DeviceClasses) held."""
        return self._devices.counts

    # -- internals ---------------------------------------------------------
    def _amounts_of(self, name: str) -> tuple[Mapping[str, int], Mapping[str, int]]:
        state = self._frozen[name]
        return state.node.allocatable.amounts, state.free_amounts

    def _drop_agent(self, agent: str) -> None:
        self._agent_replicas[agent] -= 1
        if self._agent_replicas[agent] <= 0:
            del self._agent_replicas[agent]
        self._version += 1

    def _target(self, uid: str) -> tuple[str, Pod] | None:
        pod = self._pods.get(uid)
        if pod is not None and pod.holds_resources:
            return pod.node_name, pod
        assumption = self._assumed.get(uid)
        if assumption is not None and (pod is None or not pod.terminal):
            return assumption.node_name, assumption.pod
        return None

    def _reaccount(self, uid: str) -> None:
        old = self._placed.pop(uid, None)
        new = self._target(uid)
        if old is not None:
            self._count(old[0], old[1], -1)
        if new is not None:
            self._placed[uid] = new
            self._count(new[0], new[1], +1)
        self._renominate(uid)
        pod = self._pods.get(uid)
        waiting = pod is not None and new is None and not pod.terminal and not pod.deleting
        self._demand.set_pending(
            uid, demand_class(pod, self._gpu_resource) if waiting and pod is not None else None
        )
        self._version += 1

    def _arrived(self, pod: Pod) -> None:
        shape = demand_class(pod, self._gpu_resource)
        if shape is not None:
            self._demand.arrived(shape)
            if pod.agent and self._agent_shapes.get(pod.agent) != shape:
                self._agent_shapes[pod.agent] = shape
                self._frozen_agent_shapes = MappingProxyType(dict(self._agent_shapes))

    def _renominate(self, uid: str) -> None:
        """List the pod under its nominated node while it is not accounted anywhere.

        A pod we bound (assumed) is no longer nominated, as kube-scheduler drops
        the nomination of a pod it assumes; if the bind fails it is again.
        """
        old = self._nominations.pop(uid, None)
        if old is not None:
            entries = self._nominated[old]
            del entries[uid]
            if not entries:
                del self._nominated[old]
            self._dirty_nominated.add(old)
        pod = self._pods.get(uid)
        if pod is not None and pod.nominated and uid not in self._placed:
            node = pod.nominated_node_name
            self._nominations[uid] = node
            self._nominated.setdefault(node, {})[uid] = NominatedPod.of(pod)
            self._dirty_nominated.add(node)

    def _freeze_nominated(self) -> None:
        for node in self._dirty_nominated:
            entries = self._nominated.get(node)
            if entries:
                self._frozen_nominated[node] = tuple(entries.values())
            else:
                self._frozen_nominated.pop(node, None)
        self._dirty_nominated.clear()

    def _count(self, node_name: str, pod: Pod, sign: int) -> None:
        group = group_of(pod)
        if group is not None:
            members = self._group_nodes.setdefault(group, Counter())
            members[node_name] += sign
            if members[node_name] <= 0:
                del members[node_name]
            if not members:
                del self._group_nodes[group]
            self._groups_dirty = True
        if pod.agent:
            where = self._agent_nodes.setdefault(pod.agent, Counter())
            where[node_name] += sign
            if where[node_name] <= 0:
                del where[node_name]
            if not where:
                del self._agent_nodes[pod.agent]
            self._dirty_agents.add(pod.agent)
        totals = self._nodes.get(node_name)
        if totals is not None:
            totals.add(pod, sign)
            self._touch(node_name)

    def _touch(self, name: str) -> None:
        self._dirty.add(name)
        self._version += 1
