"""Pydantic schemas for the parts of v1.Pod and v1.Node that placement reads.

The same schemas parse pods sent by kube-scheduler (so a malformed field is
reported by its path) and objects listed or watched from the API server.
Unknown fields are ignored: these are views, not full API types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any

from kubernetes.utils import parse_quantity
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from scheduler_extender.domain.devices import PodClaim
from scheduler_extender.domain.objects import (
    Node,
    Owner,
    Pod,
    Requirement,
    SelectorTerm,
    Taint,
    Toleration,
)
from scheduler_extender.domain.resources import CPU, MEMORY, PODS, Resources

_MAX_QUANTITY = Decimal(2**62)
_HUGEPAGES_PREFIX = "hugepages-"


@lru_cache(maxsize=4096)
def _parse(text: str) -> Decimal:
    try:
        value: Decimal = parse_quantity(text)
    except (ValueError, ArithmeticError):
        raise ValueError(f"{text!r} is not a valid Kubernetes quantity") from None
    if not value.is_finite() or value > _MAX_QUANTITY:
        raise ValueError(f"{text!r} is out of range")
    if value < 0:
        raise ValueError(f"{text!r}: quantities must not be negative")
    return value


def _quantity(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("a quantity must be a string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a quantity must be finite")
    return _parse(str(value))


Quantity = Annotated[Decimal, BeforeValidator(_quantity)]


def to_units(name: str, value: Decimal) -> int:
    """cpu to millicores, everything else to whole base units (rounded up)."""
    scaled = value * 1000 if name == CPU else value
    return math.ceil(scaled)


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class OwnerReference(_View):
    kind: str
    name: str
    uid: str = ""
    controller: bool = False


class ObjectMeta(_View):
    name: str = Field(min_length=1)
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[OwnerReference] = Field(default_factory=list, alias="ownerReferences")
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")


class ResourceRequirements(_View):
    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)

    def effective(self) -> dict[str, Decimal]:
        # The API server defaults a missing request to its limit.
        return {**self.limits, **self.requests}


class Container(_View):
    name: str = ""
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    restart_policy: str | None = Field(default=None, alias="restartPolicy")


class NodeSelectorRequirement(_View):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)


class NodeSelectorTerm(_View):
    match_expressions: list[NodeSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions"
    )
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=list, alias="matchFields")


class NodeSelector(_View):
    node_selector_terms: list[NodeSelectorTerm] = Field(
        default_factory=list, alias="nodeSelectorTerms"
    )


class NodeAffinity(_View):
    required: NodeSelector | None = Field(
        default=None, alias="requiredDuringSchedulingIgnoredDuringExecution"
    )


class Affinity(_View):
    node_affinity: NodeAffinity | None = Field(default=None, alias="nodeAffinity")
    pod_affinity: dict[str, Any] | None = Field(default=None, alias="podAffinity")
    pod_anti_affinity: dict[str, Any] | None = Field(default=None, alias="podAntiAffinity")


class TolerationView(_View):
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""


class PodSpec(_View):
    node_name: str = Field(default="", alias="nodeName")
    scheduler_name: str = Field(default="default-scheduler", alias="schedulerName")
    containers: list[Container] = Field(default_factory=list)
    init_containers: list[Container] = Field(default_factory=list, alias="initContainers")
    overhead: dict[str, Quantity] = Field(default_factory=dict)
    # Pod-level resources (KEP-2837), a budget shared by all containers.
    resources: ResourceRequirements | None = None
    priority: int | None = None
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    affinity: Affinity | None = None
    tolerations: list[TolerationView] = Field(default_factory=list)
    topology_spread_constraints: list[dict[str, Any]] = Field(
        default_factory=list, alias="topologySpreadConstraints"
    )
    resource_claims: list[PodResourceClaim] = Field(default_factory=list, alias="resourceClaims")


class PodResourceClaim(_View):
    """An entry of ``spec.resourceClaims`` (DRA): a claim by name or from a template."""

    name: str
    resource_claim_name: str | None = Field(default=None, alias="resourceClaimName")
    resource_claim_template_name: str | None = Field(
        default=None, alias="resourceClaimTemplateName"
    )


class PodResourceClaimStatus(_View):
    name: str
    resource_claim_name: str | None = Field(default=None, alias="resourceClaimName")


class PodStatus(_View):
    phase: str = "Pending"
    nominated_node_name: str = Field(default="", alias="nominatedNodeName")
    resource_claim_statuses: list[PodResourceClaimStatus] = Field(
        default_factory=list, alias="resourceClaimStatuses"
    )


class PodView(_View):
    metadata: ObjectMeta
    spec: PodSpec = Field(default_factory=PodSpec)
    status: PodStatus = Field(default_factory=PodStatus)

    def requests(self) -> Resources:
        """Effective requests, computed the way kube-scheduler does.

        The containers' aggregate, with the pod-level requests in its place for
        the resources those cover, plus the pod overhead.
        """
        total = _container_requests(self.spec)
        total.update(_pod_level_requests(self.spec.resources, total))
        _add(total, self.spec.overhead)
        amounts = {name: to_units(name, value) for name, value in total.items()}
        amounts[PODS] = 1
        return Resources.of(amounts)

    def to_domain(self, agent_label: str) -> Pod:
        meta, spec = self.metadata, self.spec
        controller = next((o for o in meta.owner_references if o.controller), None)
        affinity = spec.affinity
        required = affinity.node_affinity.required if affinity and affinity.node_affinity else None
        return Pod(
            name=meta.name,
            namespace=meta.namespace or "default",
            uid=meta.uid,
            requests=self.requests(),
            node_name=spec.node_name,
            nominated_node_name=self.status.nominated_node_name,
            scheduler_name=spec.scheduler_name,
            phase=self.status.phase,
            priority=spec.priority or 0,
            labels=meta.labels,
            annotations=meta.annotations,
            node_selector=spec.node_selector,
            required_affinity=tuple(_term(t) for t in required.node_selector_terms)
            if required
            else (),
            tolerations=tuple(
                Toleration(t.key, t.operator, t.value, t.effect) for t in spec.tolerations
            ),
            owner=Owner(controller.kind, controller.name, controller.uid) if controller else None,
            has_pod_level_constraints=bool(
                (affinity and (affinity.pod_affinity or affinity.pod_anti_affinity))
                or spec.topology_spread_constraints
            ),
            is_mirror="kubernetes.io/config.mirror" in meta.annotations,
            deleting=meta.deletion_timestamp is not None,
            agent=meta.labels.get(agent_label) or None,
            claims=self._claims() if spec.resource_claims else (),
        )

    def _claims(self) -> tuple[PodClaim, ...]:
        # A claim from a template gets its generated name in the pod's status.
        generated = {
            s.name: s.resource_claim_name or "" for s in self.status.resource_claim_statuses
        }
        return tuple(
            PodClaim(
                c.name,
                c.resource_claim_name or generated.get(c.name, ""),
                c.resource_claim_template_name or "",
            )
            for c in self.spec.resource_claims
        )


def _container_requests(spec: PodSpec) -> dict[str, Decimal]:
    """Sum over app containers (and restartable init "sidecars"), at least the
    largest plain init container (with the sidecars started before it)."""
    total: dict[str, Decimal] = {}
    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for container in spec.init_containers:
        effective = container.resources.effective()
        if container.restart_policy == "Always":
            _add(sidecars, effective)
        else:
            for name, value in effective.items():
                init_peak[name] = max(
                    init_peak.get(name, Decimal(0)), value + sidecars.get(name, Decimal(0))
                )
    for container in spec.containers:
        _add(total, container.resources.effective())
    _add(total, sidecars)
    for name, value in init_peak.items():
        total[name] = max(total.get(name, Decimal(0)), value)
    return total


def _add(into: dict[str, Decimal], amounts: Mapping[str, Decimal]) -> None:
    for name, value in amounts.items():
        into[name] = into.get(name, Decimal(0)) + value


def _is_pod_level_resource(name: str) -> bool:
    """Resources ``spec.resources`` may set: cpu, memory and hugepages-<size>.

    Anything else (nvidia.com/gpu, other extended resources) is only ever
    requested by containers.
    """
    return name in (CPU, MEMORY) or name.startswith(_HUGEPAGES_PREFIX)


def _pod_level_requests(
    level: ResourceRequirements | None, containers: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """The pod-level requests that replace the containers' aggregate, per resource.

    Objects from the API server are already defaulted; the rules below repeat
    that defaulting for objects that are not (tests, files), so both agree.
    A pod-level limit without a request stands for the request, except for
    cpu and memory that containers request: defaulting then copies the
    containers' aggregate, which changes nothing. (Hugepages cannot be
    overcommitted: there the limit is the request either way.)
    """
    if level is None:
        return {}
    requests = {n: v for n, v in level.requests.items() if _is_pod_level_resource(n)}
    for name, limit in level.limits.items():
        if name in requests or not _is_pod_level_resource(name):
            continue
        if name in containers and not name.startswith(_HUGEPAGES_PREFIX):
            continue
        requests[name] = limit
    return requests


def _term(term: NodeSelectorTerm) -> SelectorTerm:
    def req(r: NodeSelectorRequirement) -> Requirement:
        return Requirement(r.key, r.operator, tuple(r.values))

    return SelectorTerm(
        expressions=tuple(req(r) for r in term.match_expressions),
        fields=tuple(req(r) for r in term.match_fields),
    )


class TaintView(_View):
    key: str
    value: str = ""
    effect: str


class NodeSpec(_View):
    taints: list[TaintView] = Field(default_factory=list)
    unschedulable: bool = False


class NodeStatus(_View):
    allocatable: dict[str, Quantity] = Field(default_factory=dict)
    capacity: dict[str, Quantity] = Field(default_factory=dict)


class NodeView(_View):
    metadata: ObjectMeta
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus = Field(default_factory=NodeStatus)

    def to_domain(self) -> Node:
        # Allocatable is what the scheduler may hand out; fall back to capacity.
        amounts = self.status.allocatable or self.status.capacity
        return Node(
            name=self.metadata.name,
            allocatable=Resources.of({k: to_units(k, v) for k, v in amounts.items()}),
            labels=self.metadata.labels,
            taints=tuple(Taint(t.key, t.value, t.effect) for t in self.spec.taints),
            unschedulable=self.spec.unschedulable,
        )


def pod_from_json(obj: Any, agent_label: str) -> Pod:
    return PodView.model_validate(obj).to_domain(agent_label)


def node_from_json(obj: Any) -> Node:
    return NodeView.model_validate(obj).to_domain()
