"""Hard rules: which candidate nodes can take a pod, and why not.

A rejection is *resolvable* when preempting pods on the node could make room
(kube-scheduler may then try preemption) and *unresolvable* when nothing ever
could, e.g. the node's total capacity is below the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from scheduler_extender.domain.cluster import NodeState, Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.resources import PODS


class Reason(StrEnum):
    """Bounded set of rejection reasons (also a metric label)."""

    UNKNOWN_NODE = "unknown_node"
    INSUFFICIENT = "insufficient_resources"
    EXCEEDS_CAPACITY = "exceeds_capacity"
    AGENT_LIMIT = "agent_replicas_per_node"
    RESERVED = "reserved"


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


def check_node(pod: Pod, state: NodeState | None, rules: FilterRules) -> Rejection | None:
    """Why ``pod`` cannot go on the node, or None when it can."""
    if state is None:
        return Rejection(Reason.UNKNOWN_NODE, "node is not in the extender's cache", False)
    over_capacity = [
        name for name, amount in pod.requests.amounts.items() if amount > state.allocatable(name)
    ]
    if over_capacity:
        detail = ", ".join(
            f"{name}: requests {pod.requests.get(name)}, node has {state.allocatable(name)} in total"
            for name in sorted(over_capacity)
        )
        return Rejection(Reason.EXCEEDS_CAPACITY, f"request exceeds node capacity ({detail})", True)
    short = [name for name, amount in pod.requests.amounts.items() if amount > state.free(name)]
    if state.free(PODS) < 1 and state.allocatable(PODS) > 0:
        short.append(PODS)
    if short:
        detail = ", ".join(
            f"{name}: {max(state.free(name), 0)} free, {pod.requests.get(name) or 1} requested"
            for name in sorted(set(short))
        )
        return Rejection(Reason.INSUFFICIENT, f"insufficient resources ({detail})", False)
    limit = rules.max_agent_replicas_per_node
    if limit and pod.agent and state.agents.get(pod.agent, 0) >= limit:
        return Rejection(
            Reason.AGENT_LIMIT,
            f"node already runs {limit} replicas of agent {pod.agent!r} (the limit)",
            False,
        )
    return None


def filter_nodes(
    pod: Pod, names: Iterable[str], snapshot: Snapshot, rules: FilterRules
) -> FilterOutcome:
    passed: list[str] = []
    failed: dict[str, Rejection] = {}
    for name in dict.fromkeys(names):  # duplicates are answered once
        rejection = check_node(pod, snapshot.get(name), rules)
        if rejection is None:
            passed.append(name)
        else:
            failed[name] = rejection
    return FilterOutcome(passed, failed)
