"""An independent check of a plan against the snapshot it was made from.

It shares nothing with the model: it replays the actions pod by pod on the
raw nodes and pods and checks what kube-scheduler, the extender's filter, the
Eviction API and the packing policy would check. It is what the tests trust,
and what the executor runs on a fresh snapshot before acting.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scheduler_extender.domain.groups import group_of
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget
from scheduler_extender.domain.packing.plan import Action, ActionKind, Plan
from scheduler_extender.domain.packing.policy import PackingPolicy, skip_reason
from scheduler_extender.domain.resources import PODS


@dataclass(frozen=True, slots=True)
class Violation:
    # bounded: capacity, admission, pinned, budget, agent_limit, eviction, gang, action, report
    rule: str
    message: str


def check_plan(
    plan: Plan,
    nodes: Sequence[Node],
    pods: Sequence[Pod],
    policy: PackingPolicy,
    budgets: Sequence[DisruptionBudget] = (),
) -> list[Violation]:
    """Everything wrong with ``plan`` on this snapshot (empty: the plan is valid)."""
    by_uid = {p.uid: p for p in pods if not p.terminal}
    node_by_name = {n.name: n for n in nodes}
    problems: list[Violation] = []
    touched: set[str] = set()
    final: dict[str, str] = {p.uid: p.node_name for p in by_uid.values() if p.node_name}
    arrivals: dict[str, list[Pod]] = defaultdict(list)
    for action in plan.actions:
        pod = by_uid.get(action.pod.uid)
        if pod is None:
            problems.append(Violation("action", f"{action.pod.key}: not in the snapshot"))
            continue
        if pod.uid in touched:
            problems.append(Violation("action", f"{pod.key}: appears in more than one action"))
            continue
        touched.add(pod.uid)
        problems += _action_shape(action, pod, node_by_name)
        if action.kind is not ActionKind.PLACE:
            problems += _movable(pod, policy, budgets)
        if action.kind is ActionKind.EVICT:
            final.pop(pod.uid, None)
        else:
            final[pod.uid] = action.node
            arrivals[action.node].append(pod)
    if problems:
        return problems  # the rest would only repeat malformed actions
    on_node: dict[str, list[Pod]] = defaultdict(list)
    for uid, node_name in final.items():
        on_node[node_name].append(by_uid[uid])
    before: dict[str, list[Pod]] = defaultdict(list)
    for pod in by_uid.values():
        if pod.node_name:
            before[pod.node_name].append(pod)
    for name, arrived in arrivals.items():
        node = node_by_name[name]
        for pod in arrived:
            if not node.admits(pod):
                why = "cordon, taints, nodeSelector or node affinity"
                problems.append(Violation("admission", f"{pod.key}: {name} refuses it ({why})"))
    for name, node in node_by_name.items():
        problems += _capacity(
            node, before.get(name, []), on_node.get(name, []), arrivals.get(name, [])
        )
        problems += _agents(
            node, before.get(name, []), on_node.get(name, []), arrivals.get(name, []), policy
        )
    problems += _budgets(plan, budgets)
    problems += _evictions(plan, node_by_name, on_node, policy)
    problems += _gangs(plan, by_uid.values(), policy)
    problems += _report(plan, by_uid.values())
    return problems


def _gangs(plan: Plan, pods: Iterable[Pod], policy: PackingPolicy) -> list[Violation]:
    """A pod group with no pod running yet is placed whole or not at all."""
    members: dict[str, list[Pod]] = defaultdict(list)
    running: set[str] = set()
    for pod in pods:
        group = group_of(pod)
        if group is None:
            continue
        if pod.node_name:
            running.add(group)
        elif skip_reason(pod, policy) is None:
            members[group].append(pod)
    placed = {a.pod.uid for a in plan.actions if a.kind is ActionKind.PLACE}
    problems = []
    for group, gang in sorted(members.items()):
        count = sum(p.uid in placed for p in gang)
        if group not in running and 0 < count < len(gang):
            problems.append(Violation("gang", f"{group}: {count} of its {len(gang)} pods placed"))
    return problems


def _action_shape(action: Action, pod: Pod, nodes: Mapping[str, Node]) -> list[Violation]:
    match action.kind:
        case ActionKind.PLACE if pod.node_name:
            return [Violation("action", f"{pod.key}: placed but already runs on {pod.node_name}")]
        case ActionKind.MOVE if pod.node_name != action.source or action.node == action.source:
            where = pod.node_name or "no node"
            step = f"{action.source}->{action.node}"
            return [Violation("action", f"{pod.key}: move {step} but it runs on {where}")]
        case ActionKind.EVICT if pod.node_name != action.node:
            where = pod.node_name or "no node"
            return [Violation("action", f"{pod.key}: evicted from {action.node}, runs on {where}")]
    if action.kind is not ActionKind.EVICT and action.node not in nodes:
        return [Violation("action", f"{pod.key}: target node {action.node} does not exist")]
    return []


def _movable(
    pod: Pod, policy: PackingPolicy, budgets: Sequence[DisruptionBudget]
) -> list[Violation]:
    """The pinning rules, restated: a moved or evicted pod must be recreated by a controller."""
    why: list[str] = []
    if pod.owner is None:
        why.append("has no controller")
    elif pod.owner.kind == "DaemonSet" or pod.owner.kind not in policy.movable_owner_kinds:
        why.append(f"is owned by a {pod.owner.kind}")
    if pod.is_mirror:
        why.append("is a mirror pod")
    if pod.namespace in policy.excluded_namespaces:
        why.append(f"is in excluded namespace {pod.namespace}")
    if pod.annotations.get(policy.not_movable_annotation, "").lower() == "false":
        why.append("is annotated as not movable")
    if pod.has_pod_level_constraints:
        why.append("has inter-pod constraints")
    if pod.claims:
        why.append("has DRA claims (the packing model has no devices)")
    if pod.deleting:
        why.append("is terminating")
    if policy.scheduler_names is not None and pod.scheduler_name not in policy.scheduler_names:
        why.append(f"belongs to scheduler {pod.scheduler_name}")
    covering = [b for b in budgets if b.covers(pod)]
    if len(covering) > 1:
        why.append("is covered by several PodDisruptionBudgets")
    return [Violation("pinned", f"{pod.key} is moved or evicted but {w}") for w in why]


def _capacity(
    node: Node, before: Sequence[Pod], after: Sequence[Pod], arrived: Sequence[Pod]
) -> list[Violation]:
    problems: list[Violation] = []
    names = {n for p in [*before, *after] for n in p.requests.names()} | {PODS}
    for name in sorted(names):
        if name == PODS:
            limit = node.allocatable.get(PODS)
            used_before, used_after = len(before), len(after)
            if limit == 0:
                continue  # no pod-count limit on this node
        else:
            limit = node.allocatable.get(name)
            used_before = sum(p.requests.get(name) for p in before)
            used_after = sum(p.requests.get(name) for p in after)
        if used_after <= limit:
            continue
        # Over-committed before the plan: tolerated if no new pod needs the resource.
        needy = [p.key for p in arrived if name == PODS or p.requests.get(name) > 0]
        if used_before > limit and used_after <= used_before and not needy:
            continue
        problems.append(
            Violation("capacity", f"{node.name}: {name} {used_after} > allocatable {limit}")
        )
    return problems


def _agents(
    node: Node,
    before: Sequence[Pod],
    after: Sequence[Pod],
    arrived: Sequence[Pod],
    policy: PackingPolicy,
) -> list[Violation]:
    """The filter's per-node agent limit; a node already above it may only lose replicas."""
    limit = policy.max_agent_replicas_per_node
    if not limit:
        return []
    had = Counter(p.agent for p in before if p.agent)
    has = Counter(p.agent for p in after if p.agent)
    new = Counter(p.agent for p in arrived if p.agent)
    return [
        Violation("agent_limit", f"{node.name}: {count} replicas of agent {agent} > {limit}")
        for agent, count in has.items()
        if count > limit and (count > had[agent] or new[agent])
    ]


def _budgets(plan: Plan, budgets: Sequence[DisruptionBudget]) -> list[Violation]:
    problems: list[Violation] = []
    disrupted = [a.pod for a in plan.actions if a.kind is not ActionKind.PLACE]
    for budget in budgets:
        hit = [p for p in disrupted if budget.covers(p)]
        if len(hit) > max(0, budget.disruptions_allowed):
            allowed = budget.disruptions_allowed
            message = f"PodDisruptionBudget {budget.key}: {len(hit)} disrupted, {allowed} allowed"
            problems.append(Violation("budget", message))
    return problems


def _evictions(
    plan: Plan, nodes: Mapping[str, Node], on_node: Mapping[str, list[Pod]], policy: PackingPolicy
) -> list[Violation]:
    """An evicted pod must lose its place to a higher-priority pod and fit nowhere after."""
    problems: list[Violation] = []
    arriving = [a.pod.priority for a in plan.actions if a.kind is not ActionKind.EVICT]
    for action in plan.actions:
        if action.kind is not ActionKind.EVICT:
            continue
        pod = action.pod
        if not any(p > pod.priority for p in arriving):
            problems.append(
                Violation(
                    "eviction", f"{pod.key}: evicted but no higher-priority pod is placed or moved"
                )
            )
        for name, node in nodes.items():
            if _fits(pod, node, on_node.get(name, []), policy):
                problems.append(Violation("eviction", f"{pod.key}: evicted but fits on {name}"))
                break
    return problems


def _fits(pod: Pod, node: Node, present: Sequence[Pod], policy: PackingPolicy) -> bool:
    if not node.admits(pod):
        return False
    for name, amount in pod.requests.amounts.items():
        if name == PODS:
            continue
        if amount > 0 and sum(
            p.requests.get(name) for p in present
        ) + amount > node.allocatable.get(name):
            return False
    if node.allocatable.get(PODS) and len(present) + 1 > node.allocatable.get(PODS):
        return False
    limit = policy.max_agent_replicas_per_node
    return not (limit and pod.agent and sum(p.agent == pod.agent for p in present) + 1 > limit)


def _report(plan: Plan, pods: Iterable[Pod]) -> list[Violation]:
    """The tier figures the plan reports must follow from its actions."""
    running = Counter(p.priority for p in pods if p.node_name)
    kinds: dict[ActionKind, Counter[int]] = {k: Counter() for k in ActionKind}
    for action in plan.actions:
        kinds[action.kind][action.pod.priority] += 1
    problems: list[Violation] = []
    for tier in plan.tiers:
        p = tier.priority
        expected = {
            "placedBefore": running[p],
            "placedAfter": running[p] - kinds[ActionKind.EVICT][p] + kinds[ActionKind.PLACE][p],
            "placements": kinds[ActionKind.PLACE][p],
            "moves": kinds[ActionKind.MOVE][p],
            "evictions": kinds[ActionKind.EVICT][p],
        }
        reported = tier.to_json()
        for key, value in expected.items():
            if reported[key] != value:
                problems.append(
                    Violation(
                        "report",
                        f"priority {p}: {key} reported {reported[key]}, actions give {value}",
                    )
                )
    return problems
