"""Tiny random clusters for property tests, and an exhaustive reference solver.

The brute force enumerates every pod-level outcome (stay, any node, or not
placed) and checks it with rules written here, from the raw objects, not
with the model's constraints. Its objective is the documented one: per
priority tier, highest first, fewest evictions, then most pods placed, then
fewest moves, counted per group of interchangeable pods.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from scheduler_extender.domain.objects import Node, Owner, Pod, Taint, Toleration
from scheduler_extender.domain.packing.disruption import DisruptionBudget, LabelSelector
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.resources import CPU, PODS, Resources

GPU = "nvidia.com/gpu"
POLICY = PackingPolicy(excluded_namespaces=frozenset())


@dataclass(frozen=True)
class Instance:
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    budgets: tuple[DisruptionBudget, ...]
    policy: PackingPolicy


@dataclass(frozen=True)
class _Template:
    name: str
    kind: str | None  # owner kind, None for a bare pod
    cpu: int
    gpu: int
    priority: int
    zone: str | None  # nodeSelector zone
    tolerates: bool
    agent: str | None


def _fits(pod: Pod, node: Node, present: Sequence[Pod]) -> bool:
    return all(
        sum(p.requests.get(r) for p in present) + pod.requests.get(r) <= node.allocatable.get(r)
        for r in (CPU, GPU, PODS)
    )


@st.composite
def instances(draw: st.DrawFn, max_nodes: int = 3, max_pods: int = 5) -> Instance:
    nodes = []
    for i in range(draw(st.integers(1, max_nodes))):
        taints = (Taint("dedicated", "gpu", "NoSchedule"),) if draw(st.booleans()) and i else ()
        nodes.append(
            Node(
                name=f"n{i}",
                allocatable=Resources.of(
                    {
                        CPU: 1000 * draw(st.sampled_from([2, 3, 4])),
                        GPU: draw(st.sampled_from([0, 2, 4])),
                        PODS: 110,
                    }
                ),
                labels={"zone": draw(st.sampled_from(["a", "b"]))},
                taints=taints,
                unschedulable=draw(st.integers(0, 9)) == 0,
            )
        )
    templates = [
        _Template(
            name=f"t{k}",
            kind=draw(
                st.sampled_from(["ReplicaSet", "ReplicaSet", "ReplicaSet", None, "DaemonSet"])
            ),
            cpu=1000 * draw(st.integers(1, 3)),
            gpu=draw(st.sampled_from([0, 0, 1, 2])),
            priority=draw(st.integers(1, 3)),
            zone=draw(st.sampled_from([None, None, "a"])),
            tolerates=draw(st.booleans()),
            agent=draw(st.sampled_from([None, "x"])),
        )
        for k in range(draw(st.integers(1, 3)))
    ]
    pods: list[Pod] = []
    for i in range(draw(st.integers(1, max_pods))):
        t = draw(st.sampled_from(templates))
        pod = Pod(
            name=f"{t.name}-{i}",
            namespace="default",
            uid=f"uid-{i}",
            requests=Resources.of({CPU: t.cpu, GPU: t.gpu, PODS: 1}),
            priority=t.priority,
            labels={"app": t.name},
            node_selector={"zone": t.zone} if t.zone else {},
            tolerations=(Toleration("dedicated", "Exists"),) if t.tolerates else (),
            owner=Owner(t.kind, t.name, f"uid-{t.name}") if t.kind else None,
            agent=t.agent,
        )
        if draw(st.booleans()):
            spots = [
                n
                for n in nodes
                if n.admits(pod) and _fits(pod, n, [p for p in pods if p.node_name == n.name])
            ]
            if spots:
                node = draw(st.sampled_from(spots))
                pod = Pod(**{**_fields(pod), "node_name": node.name, "phase": "Running"})
        pods.append(pod)
    budgets: tuple[DisruptionBudget, ...] = ()
    if draw(st.booleans()):
        t = draw(st.sampled_from(templates))
        budgets = (
            DisruptionBudget(
                "default", f"pdb-{t.name}", LabelSelector({"app": t.name}), draw(st.integers(0, 1))
            ),
        )
    limit = draw(st.sampled_from([0, 0, 1, 2]))
    policy = PackingPolicy(excluded_namespaces=frozenset(), max_agent_replicas_per_node=limit)
    return Instance(tuple(nodes), tuple(pods), budgets, policy)


def _fields(pod: Pod) -> dict[str, object]:
    return {name: getattr(pod, name) for name in Pod.__dataclass_fields__}


def _pinned(pod: Pod, instance: Instance) -> bool:
    if pod.owner is None or pod.owner.kind not in instance.policy.movable_owner_kinds:
        return True
    return any(b.covers(pod) and b.disruptions_allowed <= 0 for b in instance.budgets)


def brute_force(instance: Instance, tiers: Sequence[int]) -> tuple[tuple[int, int, int], ...]:
    """The best (-evictions, placed, -moves) per tier over every feasible outcome."""
    nodes = {n.name: n for n in instance.nodes}
    pods = list(instance.pods)
    choices: list[list[str | None]] = []
    for pod in pods:
        if pod.node_name and _pinned(pod, instance):
            choices.append([pod.node_name])
        else:
            choices.append([None, *nodes])
    limit = instance.policy.max_agent_replicas_per_node
    best: tuple[tuple[int, int, int], ...] | None = None
    for outcome in itertools.product(*choices):
        on_node: dict[str, list[Pod]] = defaultdict(list)
        feasible = True
        for pod, where in zip(pods, outcome, strict=True):
            if where is None:
                continue
            if where != pod.node_name and not nodes[where].admits(pod):
                feasible = False
                break
            on_node[where].append(pod)
        if not feasible:
            continue
        if not all(_fits_all(nodes[name], present) for name, present in on_node.items()):
            continue
        if limit and not _agents_ok(pods, outcome, on_node, limit):
            continue
        disrupted = [
            p for p, w in zip(pods, outcome, strict=True) if p.node_name and w != p.node_name
        ]
        if any(
            sum(b.covers(p) for p in disrupted) > b.disruptions_allowed for b in instance.budgets
        ):
            continue
        vector = _vector(pods, outcome, tiers)
        if best is None or vector > best:
            best = vector
    assert best is not None  # staying put is always feasible
    return best


def _fits_all(node: Node, present: Sequence[Pod]) -> bool:
    return all(
        sum(p.requests.get(r) for p in present) <= node.allocatable.get(r) for r in (CPU, GPU, PODS)
    )


def _agents_ok(
    pods: Sequence[Pod], outcome: Sequence[str | None], on_node: dict[str, list[Pod]], limit: int
) -> bool:
    before: Counter[tuple[str, str]] = Counter(
        (p.node_name, p.agent) for p in pods if p.node_name and p.agent
    )
    for name, present in on_node.items():
        arrived = {p.agent for p in present if p.agent and p.node_name != name}
        for agent, count in Counter(p.agent for p in present if p.agent).items():
            if count > limit and (count > before[(name, agent)] or agent in arrived):
                return False
    return True


def _vector(
    pods: Sequence[Pod], outcome: Sequence[str | None], tiers: Sequence[int]
) -> tuple[tuple[int, int, int], ...]:
    groups: dict[str, list[tuple[Pod, str | None]]] = defaultdict(list)
    for pod, where in zip(pods, outcome, strict=True):
        groups[pod.owner.uid if pod.owner else pod.uid].append((pod, where))
    per_tier: dict[int, list[int]] = {t: [0, 0, 0] for t in tiers}
    for members in groups.values():
        priority = members[0][0].priority
        if priority not in per_tier:
            continue
        before = Counter(p.node_name for p, _ in members if p.node_name)
        after = Counter(w for _, w in members if w is not None)
        running, placed = sum(before.values()), sum(after.values())
        stays = sum(min(after[n], c) for n, c in before.items())
        evictions = max(0, running - placed)
        per_tier[priority][0] -= evictions
        per_tier[priority][1] += placed
        per_tier[priority][2] -= min(running, placed) - stays
    return tuple((e, p, m) for e, p, m in (per_tier[t] for t in tiers))
