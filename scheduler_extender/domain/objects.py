"""Pods and nodes as the scheduler sees them, stripped to what placement needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from scheduler_extender.domain.devices import PodClaim
from scheduler_extender.domain.resources import EMPTY, Resources


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


# The taint the node lifecycle controller puts on a cordoned node.
UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = TaintEffect.NO_SCHEDULE


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # Equal or Exists
    value: str = ""
    effect: str = ""  # empty matches every effect

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value


@dataclass(frozen=True, slots=True)
class Requirement:
    """One node-selector requirement (matchExpressions or matchFields entry)."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist, Gt, Lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        match self.operator:
            case "In":
                return present and value in self.values
            case "NotIn":
                return not present or value not in self.values
            case "Exists":
                return present
            case "DoesNotExist":
                return not present
            case "Gt" | "Lt":
                if not present or len(self.values) != 1:
                    return False
                try:
                    have, bound = int(value), int(self.values[0])
                except ValueError:
                    return False
                return have > bound if self.operator == "Gt" else have < bound
        return False


@dataclass(frozen=True, slots=True)
class SelectorTerm:
    """A nodeSelectorTerm: all requirements must hold (terms are ORed)."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def matches(self, node: Node) -> bool:
        if not self.expressions and not self.fields:
            return False  # an empty term matches nothing, as upstream
        field_values = {"metadata.name": node.name}
        return all(r.matches(node.labels) for r in self.expressions) and all(
            r.matches(field_values) for r in self.fields
        )


@dataclass(frozen=True, slots=True)
class Owner:
    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    uid: str
    requests: Resources = EMPTY
    node_name: str = ""
    # status.nominatedNodeName: where preemption made room for this pod. Until
    # it is bound, kube-scheduler holds that room against pods of no higher priority.
    nominated_node_name: str = ""
    scheduler_name: str = "default-scheduler"
    phase: str = "Pending"
    priority: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    required_affinity: tuple[SelectorTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    owner: Owner | None = None
    # Terms the node-level model cannot express (pod (anti-)affinity,
    # topology spread): such pods are never moved by the packer.
    has_pod_level_constraints: bool = False
    is_mirror: bool = False
    deleting: bool = False
    agent: str | None = None
    # spec.resourceClaims (DRA), with the names of generated claims from the pod's status.
    claims: tuple[PodClaim, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def holds_resources(self) -> bool:
        """Whether the pod counts against its node's capacity."""
        return bool(self.node_name) and not self.terminal

    @property
    def nominated(self) -> bool:
        """Whether the pod waits for room preemption made on its nominated node."""
        return bool(self.nominated_node_name) and not self.node_name and not self.terminal

    def tolerates(self, taint: Taint) -> bool:
        return any(t.tolerates(taint) for t in self.tolerations)

    def tolerates_all(self, taints: tuple[Taint, ...]) -> bool:
        return all(
            taint.effect == TaintEffect.PREFER_NO_SCHEDULE or self.tolerates(taint)
            for taint in taints
        )

    def selects(self, node: Node) -> bool:
        """nodeSelector and required node affinity both admit ``node``."""
        if any(node.labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return not self.required_affinity or any(t.matches(node) for t in self.required_affinity)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    allocatable: Resources = EMPTY
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    def admits(self, pod: Pod) -> bool:
        """Static eligibility: cordon, taints, selector and affinity (not capacity)."""
        return self.open_to(pod) and pod.tolerates_all(self.taints) and pod.selects(self)

    def open_to(self, pod: Pod) -> bool:
        """The NodeUnschedulable filter: a cordon bars pods that do not tolerate it.

        kube-scheduler reads a toleration of the cordon taint as a toleration of
        ``spec.unschedulable`` itself, whether or not the taint is on the node yet
        (DaemonSet pods carry one, so they still land on cordoned nodes).
        """
        return not self.unschedulable or pod.tolerates(_CORDON)


_CORDON = Taint(UNSCHEDULABLE_TAINT_KEY, "", TaintEffect.NO_SCHEDULE)
