"""The packing problem: nodes, pinned load, and groups of interchangeable pods.

Pods that share an owner, a pod template, a priority, requests and every
placement constraint are interchangeable: the problem keeps them as one
*group* and the model decides only how many of them each node holds (the
symmetry between replicas disappears, and thousands of pods become hundreds
of integer counts).

Pods of one group (``domain/groups.py``: a LeaderWorkerSet group or the
group label) never share a packing group with other pods. A group whose pods
are all pending is a *gang*: the plan places all of it or none of it (an
expert-parallel group with some members missing only holds GPUs idle).

Capacity is checked the way the extender's filter and kube-scheduler's
NodeResourcesFit check it. A node whose current load already exceeds its
allocatable amount of a resource (pods bound with ``spec.nodeName``, a shrunk
node) keeps that load but accepts no new pod that requests the resource.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scheduler_extender.domain.groups import declared_size, group_of
from scheduler_extender.domain.objects import Node, Owner, Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget
from scheduler_extender.domain.packing.policy import (
    PackingPolicy,
    PinReason,
    SkipReason,
    pin_reason,
    skip_reason,
)
from scheduler_extender.domain.resources import CPU, MEMORY, PODS

TEMPLATE_HASH_LABELS = ("pod-template-hash", "controller-revision-hash")
# A node with no "pods" allocatable has no pod-count limit (as in the filter).
UNLIMITED = np.iinfo(np.int64).max // 4

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def template_hash(pod: Pod) -> str:
    return next((pod.labels[k] for k in TEMPLATE_HASH_LABELS if k in pod.labels), "")


@dataclass(frozen=True, slots=True)
class Group:
    """Interchangeable pods: running ones by node index, and pending ones."""

    index: int
    priority: int
    requests: IntArray  # per pod, aligned with PackingProblem.resources
    agent: str | None
    budgets: tuple[int, ...]  # indices into PackingProblem.budgets
    running: Mapping[int, tuple[Pod, ...]]
    pending: tuple[Pod, ...]
    # Per node: may a pod of the group newly be placed there? (admitted, fits
    # next to the pinned load, no over-committed resource, pinned replicas of its
    # agent under the limit)
    arrivals: BoolArray
    owner: Owner | None
    template_hash: str
    size: int  # running and pending pods
    gang: str | None = None  # the pod group (groups.group_of) its pods belong to


@dataclass(frozen=True, slots=True)
class PackingProblem:
    nodes: tuple[Node, ...]
    resources: tuple[str, ...]
    capacity: IntArray  # nodes x resources: the most each node may hold
    fixed: IntArray  # nodes x resources: load of pinned pods
    fixed_agents: tuple[Mapping[str, int], ...]  # per node: pinned pods per agent
    groups: tuple[Group, ...]
    original: IntArray  # groups x nodes: the running pods of each group, where they run
    budgets: tuple[DisruptionBudget, ...]  # only those that cover a movable group
    pinned: tuple[tuple[Pod, PinReason], ...]
    skipped: tuple[tuple[Pod, SkipReason], ...]
    max_agent_replicas_per_node: int
    # Member groups of each gang (a pod group whose pods are all pending): all or none placed.
    gangs: tuple[tuple[int, ...], ...] = ()

    @property
    def tiers(self) -> tuple[int, ...]:
        """Priorities of the groups, highest first."""
        return tuple(sorted({g.priority for g in self.groups}, reverse=True))

    def pinned_by_priority(self) -> Counter[int]:
        """Pinned pods counted on a node of the snapshot, per priority."""
        return Counter(p.priority for p, _ in self.pinned)

    def upper_bounds(self, group: Group, load: IntArray | None = None) -> IntArray:
        """Per node, the most pods of ``group`` it can hold next to ``load``.

        ``load`` (nodes x resources) defaults to the pinned pods' load.
        """
        original = self.original[group.index]
        room = self.capacity - (self.fixed if load is None else load)
        need = group.requests
        used = need > 0
        fit = np.min(room[:, used] // need[used], axis=1) if used.any() else original + group.size
        bound = np.maximum(original, np.minimum(group.size, fit))
        bounds: IntArray = np.where(group.arrivals, bound, original)
        return bounds


def build_problem(
    nodes: Sequence[Node],
    pods: Sequence[Pod],
    policy: PackingPolicy,
    budgets: Sequence[DisruptionBudget] = (),
) -> PackingProblem:
    """Split ``pods`` into pinned, skipped and grouped ones over ``nodes``."""
    node_list = tuple(sorted(nodes, key=lambda n: n.name))
    index = {n.name: i for i, n in enumerate(node_list)}
    pinned: list[tuple[Pod, PinReason]] = []
    skipped: list[tuple[Pod, SkipReason]] = []
    members: dict[tuple[object, ...], list[Pod]] = defaultdict(list)
    incomplete = _incomplete_gangs(pods)
    for pod in pods:
        if pod.terminal:
            continue
        if pod.node_name:
            pin = (
                PinReason.UNKNOWN_NODE
                if pod.node_name not in index
                else pin_reason(pod, policy, budgets)
            )
            if pin is not None:
                pinned.append((pod, pin))
                continue
        else:
            skip = skip_reason(pod, policy)
            if skip is None and group_of(pod) in incomplete:
                skip = SkipReason.INCOMPLETE_GROUP
            if skip is not None:
                skipped.append((pod, skip))
                continue
        covering = tuple(i for i, b in enumerate(budgets) if b.covers(pod))
        members[_group_key(pod, covering)].append(pod)

    resources = _resources(members.values())
    column = {name: i for i, name in enumerate(resources)}
    capacity = np.zeros((len(node_list), len(resources)), dtype=np.int64)
    for i, node in enumerate(node_list):
        for name, col in column.items():
            capacity[i, col] = node.allocatable.get(name)
        if capacity[i, column[PODS]] == 0:
            capacity[i, column[PODS]] = UNLIMITED
    fixed = np.zeros_like(capacity)
    fixed_agents: list[Counter[str]] = [Counter() for _ in node_list]
    for pod, reason in pinned:
        if reason is PinReason.UNKNOWN_NODE:
            continue
        at = index[pod.node_name]
        fixed[at] += _vector(pod, column)
        if pod.agent:
            fixed_agents[at][pod.agent] += 1

    # The current load, to find over-committed resources.
    load = fixed.copy()
    for group_pods in members.values():
        for pod in group_pods:
            if pod.node_name:
                load[index[pod.node_name]] += _vector(pod, column)
    overcommitted = load > capacity
    capacity = np.maximum(capacity, load)

    used_budgets = sorted({b for key in members for b in _key_budgets(key)})
    renumber = {old: new for new, old in enumerate(used_budgets)}
    admitted: dict[tuple[object, ...], BoolArray] = {}
    limit = policy.max_agent_replicas_per_node
    groups: list[Group] = []
    for key, group_pods in sorted(members.items(), key=lambda kv: _order(kv[1])):
        sample = group_pods[0]
        requests = _vector(sample, column)
        signature = (
            tuple(sorted(sample.node_selector.items())),
            sample.required_affinity,
            sample.tolerations,
        )
        if signature not in admitted:
            admitted[signature] = np.array([n.admits(sample) for n in node_list], dtype=np.bool_)
        used = requests > 0
        arrivals = (
            admitted[signature]
            & np.all(fixed[:, used] + requests[used] <= capacity[:, used], axis=1)
            & ~np.any(overcommitted[:, used], axis=1)
        )
        if limit and sample.agent:
            # Pinned replicas at the limit leave no room. A node above it with movable
            # replicas may still take one if the plan moves enough away (the model's
            # agent limits; the checker's rule).
            agent = sample.agent
            arrivals &= np.array([f[agent] < limit for f in fixed_agents], dtype=np.bool_)
        running: dict[int, list[Pod]] = defaultdict(list)
        pending: list[Pod] = []
        for pod in sorted(group_pods, key=lambda p: (p.namespace, p.name)):
            if pod.node_name:
                running[index[pod.node_name]].append(pod)
            else:
                pending.append(pod)
        groups.append(
            Group(
                index=len(groups),
                priority=sample.priority,
                requests=requests,
                agent=sample.agent,
                budgets=tuple(renumber[b] for b in _key_budgets(key)),
                running={n: tuple(p) for n, p in sorted(running.items())},
                pending=tuple(pending),
                arrivals=arrivals,
                owner=sample.owner,
                template_hash=template_hash(sample),
                size=len(group_pods),
                gang=group_of(sample),
            )
        )
    original = np.zeros((len(groups), len(node_list)), dtype=np.int64)
    for group in groups:
        for at, running_pods in group.running.items():
            original[group.index, at] = len(running_pods)
    return PackingProblem(
        nodes=node_list,
        resources=resources,
        capacity=capacity,
        fixed=fixed,
        fixed_agents=tuple(fixed_agents),
        groups=tuple(groups),
        original=original,
        budgets=tuple(budgets[b] for b in used_budgets),
        pinned=tuple(pinned),
        skipped=tuple(skipped),
        max_agent_replicas_per_node=limit,
        gangs=_gangs(groups),
    )


def _incomplete_gangs(pods: Sequence[Pod]) -> set[str]:
    """Groups none of whose pods runs that have fewer pods than they declare: placing the
    pods seen so far would place part of the gang."""
    seen: Counter[str] = Counter()
    running: set[str] = set()
    declared: dict[str, int] = {}
    for pod in pods:
        group = group_of(pod)
        if group is None or pod.terminal:
            continue
        seen[group] += 1
        if pod.node_name:
            running.add(group)
        size = declared_size(pod)
        if size is not None:
            declared[group] = max(declared.get(group, 0), size)
    return {g for g, size in declared.items() if g not in running and seen[g] < size}


def _gangs(groups: Sequence[Group]) -> tuple[tuple[int, ...], ...]:
    members: dict[str, list[int]] = defaultdict(list)
    running: set[str] = set()
    for group in groups:
        if group.gang is not None:
            members[group.gang].append(group.index)
            if group.running:
                running.add(group.gang)
    return tuple(tuple(m) for gang, m in sorted(members.items()) if gang not in running)


def _group_key(pod: Pod, budgets: tuple[int, ...]) -> tuple[object, ...]:
    # Bare pods are never interchangeable: each is its own group.
    owner = (pod.owner.kind, pod.owner.uid or pod.owner.name) if pod.owner else ("Pod", pod.uid)
    return (
        pod.namespace,
        owner,
        template_hash(pod),
        pod.priority,
        pod.scheduler_name,
        tuple(sorted(pod.requests.amounts.items())),
        tuple(sorted(pod.node_selector.items())),
        pod.required_affinity,
        pod.tolerations,
        pod.agent,
        group_of(pod),
        budgets,
    )


def _key_budgets(key: tuple[object, ...]) -> tuple[int, ...]:
    budgets = key[-1]
    assert isinstance(budgets, tuple)  # _group_key puts the budget indices last
    return budgets


def _order(pods: list[Pod]) -> tuple[int, str, str]:
    """Groups in a stable order: highest priority first, then by namespace/name."""
    first = min(pods, key=lambda p: (p.namespace, p.name))
    return (-first.priority, first.namespace, first.name)


def _resources(groups: Iterable[Sequence[Pod]]) -> tuple[str, ...]:
    names: set[str] = set()
    for group_pods in groups:
        for pod in group_pods:
            names.update(n for n, v in pod.requests.amounts.items() if v > 0)
    rest = sorted(names - {CPU, MEMORY, PODS})
    return (CPU, MEMORY, PODS, *rest)


def _vector(pod: Pod, column: Mapping[str, int]) -> IntArray:
    vector = np.zeros(len(column), dtype=np.int64)
    for name, amount in pod.requests.amounts.items():
        col = column.get(name)
        if col is not None:
            vector[col] = amount
    vector[column[PODS]] = 1  # every pod takes one slot, whatever its requests say
    return vector
