"""Hard rules: which candidate nodes can take a pod, and why not.

A rejection is *resolvable* when preempting pods on the node could make room
(kube-scheduler may then try preemption) and *unresolvable* when nothing ever
could, e.g. the node's total capacity is below the request.

Candidates are tested all at once on the snapshot's columns. Rejections are
grouped by cause, so a call that rejects thousands of nodes builds a handful
of messages, as kube-scheduler's own plugins do ("Insufficient nvidia.com/gpu").

Pods nominated to a node (preemption made room for them there) and not bound
yet count as running on it for pods of lower or equal priority, as in
kube-scheduler's RunFilterPluginsWithNominatedPods: a pod must not take the
room freed for a pod it would itself have to yield to. That holds for every
per-node count as well, so they count against the agent replica limit too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import compress

import numpy as np

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.columns import IntArray
from scheduler_extender.domain.demand import gpu_constraint
from scheduler_extender.domain.devices import (
    DeviceChoice,
    DeviceRequest,
    Devices,
    pod_devices,
    request_fits,
)
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.rules import FreeAmounts


class Reason(StrEnum):
    """Bounded set of rejection reasons (also a metric label)."""

    UNKNOWN_NODE = "unknown_node"
    INSUFFICIENT = "insufficient_resources"
    EXCEEDS_CAPACITY = "exceeds_capacity"
    AGENT_LIMIT = "agent_replicas_per_node"
    GPU_MODEL = "gpu_model"
    RESERVED = "reserved"
    DEVICES = "devices"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    message: str
    unresolvable: bool


@dataclass(frozen=True, slots=True)
class FilterRules:
    max_agent_replicas_per_node: int = 0  # 0 = no limit


@dataclass(frozen=True, slots=True)
class FilterOutcome:
    passed: list[str]
    failed: dict[str, Rejection]
    # The rows of ``passed`` in the columns filtered on: prioritize, asked next
    # about exactly these nodes, need not look them up again.
    passed_rows: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


_UNKNOWN = Rejection(Reason.UNKNOWN_NODE, "node is not in the extender's cache", False)


@dataclass(frozen=True, slots=True)
class _Held:
    """What pods nominated ahead of the filtered pod hold, per row of the columns."""

    amounts: Mapping[str, IntArray]  # resource -> per-row amount
    agents: IntArray  # per-row replicas of the filtered pod's agent

    def amount(self, resource: str, rows: IntArray) -> IntArray | int:
        column = self.amounts.get(resource)
        return column[rows] if column is not None else 0

    def at(self, resource: str, row: int) -> int:
        column = self.amounts.get(resource)
        return int(column[row]) if column is not None else 0


def _held_by_nominated(pod: Pod, snapshot: Snapshot, resources: Collection[str]) -> _Held | None:
    """Nominated pods ``pod`` yields to: priority at least its own, not itself.

    Walks the (few) nodes with nominated pods rather than the candidates; None
    when no nominated pod is ahead of ``pod``.
    """
    if not snapshot.nominated:
        return None  # the usual case, and all it costs
    size = snapshot.columns.size
    amounts: dict[str, IntArray] = {}
    agents = np.zeros(size, dtype=np.int64)
    found = False
    for name, nominated in snapshot.nominated.items():
        row = snapshot.columns.rows.get(name)
        if row is None:
            continue  # an unknown node is rejected anyway
        for other in nominated:
            if other.uid == pod.uid or other.priority < pod.priority:
                continue
            found = True
            for resource in resources:
                if amount := other.requests.get(resource):
                    amounts.setdefault(resource, np.zeros(size, dtype=np.int64))[row] += amount
            if pod.agent and other.agent == pod.agent:
                agents[row] += 1
    return _Held(amounts, agents) if found else None


def filter_nodes(
    pod: Pod, names: Iterable[str], snapshot: Snapshot, rules: FilterRules
) -> FilterOutcome:
    """Split ``names`` into nodes that can take ``pod`` and rejections with reasons."""
    unique = list(dict.fromkeys(names))  # duplicates are answered once
    columns = snapshot.columns
    rows = columns.rows_of(unique)
    known = rows >= 0
    rows = np.where(known, rows, 0)
    requested = sorted((r, a) for r, a in pod.requests.amounts.items() if a > 0)
    held = _held_by_nominated(pod, snapshot, [r for r, _ in requested])
    # KEP-5004: a resource a DeviceClass maps is served by DRA devices on nodes that do not
    # advertise it; there the device check below decides, not the node's totals.
    mapped = _mapped_resources(snapshot.devices, requested)
    # One bit per cause; a node's code says everything that is wrong with it.
    code = np.where(known, 0, 1).astype(np.int64)
    for i, (resource, amount) in enumerate(requested):
        free = columns.free_of(resource, rows)
        if held is not None:
            free = free - held.amount(resource, rows)
        total = columns.allocatable_of(resource, rows)
        short = free < amount
        if resource in mapped:
            short &= total > 0
        # free exceeds total only where a node sets no limit (pods): never "never".
        code |= np.where(short, 1 << (2 * i + 1), 0)
        code |= np.where(short & (total < amount), 1 << (2 * i + 2), 0)
    limit = rules.max_agent_replicas_per_node
    if limit and pod.agent:
        placed = columns.agent_counts(pod.agent, rows)
        if held is not None:
            placed = placed + held.agents[rows]
        at_limit = placed >= limit
        code |= np.where(at_limit, 1 << (2 * len(requested) + 1), 0)
    # kube-scheduler's NodeAffinity filter ran before us; the same rule for GPU labels
    # holds here too, for callers that are not kube-scheduler (and for nodes relabelled since).
    constraint = gpu_constraint(pod)
    if not constraint.unconstrained:
        # Once per distinct set of GPU labels (one per model), not per node.
        admits = np.array([constraint.admits(s) for s in columns.label_sets] + [False])
        labels = columns.label_codes[rows] if len(columns.label_codes) else np.full(len(rows), -1)
        code |= np.where(admits[labels], 0, 1 << (2 * len(requested) + 2))
    code[~known] = 1  # an unknown node has no other problems worth telling
    ok = code == 0
    passed = list(compress(unique, ok.tolist()))
    passed_rows = rows[ok]
    codes = code[~ok].tolist()
    rejections = {c: _explain(c, pod, requested, limit) for c in set(codes)}
    # Thousands of names at C speed: one Rejection per distinct code, shared.
    names = compress(unique, (~ok).tolist())
    failed = dict(zip(names, map(rejections.__getitem__, codes), strict=True))
    if snapshot.devices and (pod.claims or mapped or pod.uid in snapshot.devices.owned):
        blocked_by_devices = _device_rejections(pod, passed, snapshot, mapped)
        if blocked_by_devices:
            passed, passed_rows = _without(passed, passed_rows, blocked_by_devices)
            failed.update(blocked_by_devices)
    for rule in snapshot.rules:  # extensions, e.g. a packing plan's reservations
        blocked = rule.blocked(pod, passed, _free_after_nominated(snapshot, held))
        if blocked:
            passed, passed_rows = _without(passed, passed_rows, blocked)
            reason = Reason(rule.reason)
            failed.update((n, Rejection(reason, m, False)) for n, m in blocked.items())
    return FilterOutcome(passed, failed, passed_rows)


def _without(
    passed: list[str], rows: IntArray, blocked: Collection[str]
) -> tuple[list[str], IntArray]:
    """``passed`` and their rows without the ``blocked`` nodes (the two stay aligned)."""
    keep = [name not in blocked for name in passed]
    return list(compress(passed, keep)), rows[np.array(keep, dtype=np.bool_)]


def _mapped_resources(devices: Devices, requested: list[tuple[str, int]]) -> dict[str, int]:
    """The requested resources some DeviceClass maps (extendedResourceName), with amounts."""
    if not devices.classes:
        return {}
    names = {c.extended_resource for c in devices.classes.values() if c.extended_resource}
    return {r: a for r, a in requested if r in names}


def _device_rejections(
    pod: Pod, names: list[str], snapshot: Snapshot, mapped: Mapping[str, int]
) -> dict[str, Rejection]:
    """Nodes whose devices certainly cannot satisfy the pod's claims (see domain/devices.py).

    Only a certainty rejects: a request some choice of which may fit, an unknown class, or
    devices the extender cannot see (network-attached) pass. Claims kube-scheduler has
    allocated already bind the pod to the node of their devices.
    """
    devices = snapshot.devices
    demand = pod_devices(pod.namespace, pod.claims, devices, pod.uid)
    if demand.extended_claimed:
        mapped = {}  # kube-scheduler's claim for them is counted (and tied to its node) above
    extended = [
        DeviceRequest(
            resource,
            tuple(
                DeviceChoice(c.name, count=amount)
                for c in devices.classes.values()
                if c.extended_resource == resource
            ),
        )
        for resource, amount in mapped.items()
    ]
    if not demand.pending and not demand.allocated and not extended:
        return {}
    out: dict[str, Rejection] = {}
    for name in names:
        node = devices.of(name)
        elsewhere = sorted(
            {
                where
                for result in demand.allocated
                if (where := devices.located.get(result.key, name)) not in (name, "")
            }
            if demand.allocated
            else ()
        )
        if elsewhere:
            out[name] = Rejection(
                Reason.DEVICES,
                f"the pod's claims are allocated devices of node {', '.join(elsewhere)}",
                True,
            )
            continue
        requests = demand.pending
        if extended:
            state = snapshot.nodes[name]
            requests = (*requests, *(r for r in extended if not state.allocatable(r.name)))
        short = [r.name for r in requests if not request_fits(r, devices, node)]
        if short:
            out[name] = Rejection(
                Reason.DEVICES,
                f"no free devices for the claim requests {', '.join(sorted(set(short)))}",
                node is None,  # no devices at all: preemption cannot help
            )
    return out


def _free_after_nominated(snapshot: Snapshot, held: _Held | None) -> FreeAmounts:
    def free_of(name: str, resource: str) -> int:
        # Room held for nominated pods is not there for an extension rule either.
        taken = held.at(resource, snapshot.columns.rows[name]) if held is not None else 0
        return snapshot.nodes[name].free(resource) - taken

    return free_of


def check_node(pod: Pod, name: str, snapshot: Snapshot, rules: FilterRules) -> Rejection | None:
    """Why ``pod`` cannot go on node ``name``, or None when it can."""
    return filter_nodes(pod, [name], snapshot, rules).failed.get(name)


def _explain(code: int, pod: Pod, requested: list[tuple[str, int]], limit: int) -> Rejection:
    if code & 1:
        return _UNKNOWN
    never = [(r, a) for i, (r, a) in enumerate(requested) if code & (1 << (2 * i + 2))]
    if never:
        detail = ", ".join(f"{r} (requests {a})" for r, a in never)
        return Rejection(
            Reason.EXCEEDS_CAPACITY, f"node's total capacity is below the request: {detail}", True
        )
    if code & (1 << (2 * len(requested) + 2)):
        return Rejection(
            Reason.GPU_MODEL, "node's GPU labels do not match the pod's node selection", True
        )
    short = [(r, a) for i, (r, a) in enumerate(requested) if code & (1 << (2 * i + 1))]
    if short:
        detail = ", ".join(f"{r} (requests {a})" for r, a in short)
        return Rejection(Reason.INSUFFICIENT, f"Insufficient {detail}", False)
    return Rejection(
        Reason.AGENT_LIMIT,
        f"node already runs {limit} replicas of agent {pod.agent!r} (the limit)",
        False,
    )
