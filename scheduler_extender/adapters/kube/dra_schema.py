"""Pydantic views of the ``resource.k8s.io/v1`` objects placement reads (DRA).

ResourceSlices (a driver's devices per node), ResourceClaims (requests and, once
kube-scheduler allocated them, the devices chosen) and DeviceClasses, parsed into
``domain/devices.py``. Unknown fields are ignored, as in ``schema.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from scheduler_extender.adapters.kube.schema import ObjectMeta, Quantity, _View, to_units
from scheduler_extender.domain.devices import (
    AllocatedDevice,
    AttributeValue,
    Claim,
    Counters,
    Device,
    DeviceChoice,
    DeviceClass,
    DeviceRequest,
    DeviceSlice,
    Selector,
    parse_selector,
)

# Set by kube-controller-manager on a claim it generated from a pod's template.
POD_CLAIM_NAME_ANNOTATION = "resource.kubernetes.io/pod-claim-name"


def _units(amounts: dict[str, Quantity]) -> dict[str, int]:
    return {name: to_units(name, value) for name, value in amounts.items()}


class CelView(_View):
    expression: str = ""


class SelectorView(_View):
    cel: CelView | None = None

    def to_domain(self) -> Selector:
        return parse_selector(self.cel.expression) if self.cel else Selector(exact=False)


class AttributeView(_View):
    string: str | None = None
    int_: int | None = Field(default=None, alias="int")
    bool_: bool | None = Field(default=None, alias="bool")
    version: str | None = None

    def value(self) -> AttributeValue | None:
        for value in (self.string, self.int_, self.bool_, self.version):
            if value is not None:
                return value
        return None


class RequestPolicyView(_View):
    default: Quantity | None = None


class CapacityView(_View):
    value: Quantity
    request_policy: RequestPolicyView | None = Field(default=None, alias="requestPolicy")


class CounterView(_View):
    value: Quantity


class CounterSetView(_View):
    name: str
    counters: dict[str, CounterView] = Field(default_factory=dict)

    def amounts(self) -> dict[str, int]:
        return {n: to_units(n, c.value) for n, c in self.counters.items()}


class DeviceCounterConsumptionView(_View):
    counter_set: str = Field(alias="counterSet")
    counters: dict[str, CounterView] = Field(default_factory=dict)


class DeviceView(_View):
    name: str
    attributes: dict[str, AttributeView] = Field(default_factory=dict)
    capacity: dict[str, CapacityView] = Field(default_factory=dict)
    allow_multiple_allocations: bool = Field(default=False, alias="allowMultipleAllocations")
    consumes_counters: list[DeviceCounterConsumptionView] = Field(
        default_factory=list, alias="consumesCounters"
    )

    def to_domain(self, driver: str, pool: str) -> Device:
        attributes: dict[str, AttributeValue] = {}
        for name, attribute in self.attributes.items():
            value = attribute.value()
            if value is not None:
                attributes[name if "/" in name else f"{driver}/{name}"] = value
        return Device(
            driver,
            pool,
            self.name,
            attributes=attributes,
            capacity={n: to_units(n, c.value) for n, c in self.capacity.items()},
            default_consumption={
                n: to_units(n, c.request_policy.default)
                for n, c in self.capacity.items()
                if c.request_policy is not None and c.request_policy.default is not None
            },
            shared=self.allow_multiple_allocations,
            consumes=tuple(
                Counters(c.counter_set, {n: to_units(n, v.value) for n, v in c.counters.items()})
                for c in self.consumes_counters
            ),
        )


class PoolView(_View):
    name: str
    generation: int = 0


class ResourceSliceSpec(_View):
    driver: str
    pool: PoolView
    node_name: str | None = Field(default=None, alias="nodeName")
    devices: list[DeviceView] = Field(default_factory=list)
    shared_counters: list[CounterSetView] = Field(default_factory=list, alias="sharedCounters")


class ResourceSliceView(_View):
    metadata: ObjectMeta
    spec: ResourceSliceSpec

    def to_domain(self) -> DeviceSlice:
        spec = self.spec
        return DeviceSlice(
            self.metadata.name,
            spec.driver,
            spec.pool.name,
            spec.node_name or "",
            spec.pool.generation,
            tuple(d.to_domain(spec.driver, spec.pool.name) for d in spec.devices),
            {c.name: c.amounts() for c in spec.shared_counters},
        )


class CapacityRequestsView(_View):
    requests: dict[str, Quantity] = Field(default_factory=dict)


class ExactRequestView(_View):
    device_class_name: str = Field(alias="deviceClassName")
    selectors: list[SelectorView] = Field(default_factory=list)
    allocation_mode: str = Field(default="ExactCount", alias="allocationMode")
    count: int = Field(default=1, ge=0)
    capacity: CapacityRequestsView | None = None

    def to_domain(self) -> DeviceChoice:
        return DeviceChoice(
            self.device_class_name,
            count=self.count,
            all_devices=self.allocation_mode == "All",
            capacity=_units(self.capacity.requests) if self.capacity else {},
            selectors=tuple(s.to_domain() for s in self.selectors),
        )


class DeviceRequestView(_View):
    name: str
    exactly: ExactRequestView | None = None
    first_available: list[ExactRequestView] = Field(default_factory=list, alias="firstAvailable")

    def to_domain(self) -> DeviceRequest:
        choices = [self.exactly] if self.exactly is not None else self.first_available
        return DeviceRequest(self.name, tuple(c.to_domain() for c in choices))


class DeviceClaimView(_View):
    requests: list[DeviceRequestView] = Field(default_factory=list)


class ResourceClaimSpec(_View):
    devices: DeviceClaimView = Field(default_factory=DeviceClaimView)


class DeviceResultView(_View):
    request: str = ""
    driver: str
    pool: str
    device: str
    share_id: str | None = Field(default=None, alias="shareID")
    admin_access: bool | None = Field(default=None, alias="adminAccess")
    consumed_capacity: dict[str, Quantity] = Field(default_factory=dict, alias="consumedCapacity")

    def to_domain(self) -> AllocatedDevice:
        return AllocatedDevice(
            self.request,
            self.driver,
            self.pool,
            self.device,
            self.share_id or "",
            _units(self.consumed_capacity),
        )


class DeviceAllocationView(_View):
    results: list[DeviceResultView] = Field(default_factory=list)


class AllocationView(_View):
    devices: DeviceAllocationView = Field(default_factory=DeviceAllocationView)


class ConsumerView(_View):
    resource: str = ""
    name: str = ""
    uid: str = ""


class ResourceClaimStatus(_View):
    allocation: AllocationView | None = None
    reserved_for: list[ConsumerView] = Field(default_factory=list, alias="reservedFor")


class ResourceClaimView(_View):
    metadata: ObjectMeta
    spec: ResourceClaimSpec = Field(default_factory=ResourceClaimSpec)
    status: ResourceClaimStatus = Field(default_factory=ResourceClaimStatus)

    def to_domain(self) -> Claim:
        meta = self.metadata
        allocation = self.status.allocation
        owner = next((o for o in meta.owner_references if o.kind == "Pod" and o.controller), None)
        return Claim(
            meta.namespace or "default",
            meta.name,
            meta.uid,
            tuple(r.to_domain() for r in self.spec.devices.requests),
            # An admin-access allocation (monitoring, debugging) takes nothing from the device,
            # as kube-scheduler counts it.
            tuple(r.to_domain() for r in allocation.devices.results if not r.admin_access)
            if allocation
            else None,
            tuple(c.uid for c in self.status.reserved_for if c.resource == "pods"),
            owner.uid if owner else "",
            meta.annotations.get(POD_CLAIM_NAME_ANNOTATION, ""),
        )


class DeviceClassSpec(_View):
    selectors: list[SelectorView] = Field(default_factory=list)
    extended_resource_name: str | None = Field(default=None, alias="extendedResourceName")


class DeviceClassView(_View):
    metadata: ObjectMeta
    spec: DeviceClassSpec = Field(default_factory=DeviceClassSpec)

    def to_domain(self) -> DeviceClass:
        return DeviceClass(
            self.metadata.name,
            tuple(s.to_domain() for s in self.spec.selectors),
            self.spec.extended_resource_name or "",
        )


def slice_from_json(obj: Any) -> DeviceSlice:
    return ResourceSliceView.model_validate(obj).to_domain()


def claim_from_json(obj: Any) -> Claim:
    return ResourceClaimView.model_validate(obj).to_domain()


def device_class_from_json(obj: Any) -> DeviceClass:
    return DeviceClassView.model_validate(obj).to_domain()
