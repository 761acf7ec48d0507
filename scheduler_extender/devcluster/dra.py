"""A fake DRA driver for the local control plane: ResourceSlices and DeviceClasses.

A real DRA driver (NVIDIA's, say) runs on each node, publishes a ResourceSlice of
the node's GPUs and prepares the devices kube-scheduler allocated when kubelet
starts a pod. Here kwok fakes the pods' lifecycle, so nothing needs preparing:
publishing the slices is all a driver does that scheduling sees. ``publish``
writes one ResourceSlice per fake GPU node (devices ``gpu-0`` .. ``gpu-N-1``
with the attributes ``productName``, ``memory`` and ``clique`` and a consumable
``memory`` capacity, each allowing multiple allocations), and
``device_classes`` the DeviceClasses pods claim devices through:

* ``gpu.fake.scheduler-extender.io``: any GPU of the driver (whole, or a share
  when the claim requests a ``memory`` capacity);
* ``<product>.gpu.fake.scheduler-extender.io`` per product (e.g.
  ``nvidia-h100-80gb-hbm3.gpu...``): GPUs of that product only.

Kubernetes 1.36 has every DRA feature used here on by default (beta or GA):
``DRAConsumableCapacity`` (shares), ``DRAPartitionableDevices`` and
``DRAExtendedResource``; ``FEATURE_GATES`` names them for the control plane's
processes all the same, so that a change of default cannot silently turn them off.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kubernetes import client
from kubernetes.utils import parse_quantity

from scheduler_extender.devcluster.nodes import GPU_PRODUCT_LABEL, NVLINK_LABEL, FakeNode

DRIVER = "gpu.fake.scheduler-extender.io"
API_VERSION = "resource.k8s.io/v1"
FEATURE_GATES = "DRAConsumableCapacity=true,DRAPartitionableDevices=true,DRAExtendedResource=true"
# GPU memory per product of the fake node templates (deploy/kwok/gpu-node-*.yaml).
MEMORY = {
    "NVIDIA-H100-80GB-HBM3": "80Gi",
    "NVIDIA-A100-SXM4-80GB": "80Gi",
    "NVIDIA-L4": "24Gi",
}
DEFAULT_MEMORY = "16Gi"
# A consumable capacity in thousandths of a GPU (the production trace's ``gpu_milli``): one
# device holds shares that add up to at most COMPUTE_UNITS.
COMPUTE = "compute"
COMPUTE_UNITS = 1000


def quantity(text: str) -> int:
    """A quantity ("80Gi", "1k") as a whole number (bytes, thousandths, ...)."""
    return int(parse_quantity(text))


def class_name(product: str | None = None) -> str:
    """The DeviceClass of any fake GPU, or of one product."""
    return f"{product.lower()}.{DRIVER}" if product else DRIVER


def device_classes(products: Iterable[str] = MEMORY) -> list[dict[str, Any]]:
    whole: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DeviceClass",
        "metadata": {"name": class_name()},
        "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}]},
    }
    out = [whole]
    for product in products:
        expression = (
            f'device.driver == "{DRIVER}" && '
            f'device.attributes["{DRIVER}"].productName == "{product}"'
        )
        out.append(
            {
                "apiVersion": API_VERSION,
                "kind": "DeviceClass",
                "metadata": {"name": class_name(product)},
                "spec": {"selectors": [{"cel": {"expression": expression}}]},
            }
        )
    return out


def device_request(
    count: int = 1, *, capacity: Mapping[str, str] | None = None, device_class: str | None = None
) -> dict[str, Any]:
    """One request of a claim: ``count`` whole devices, or (with ``capacity``) a share of one."""
    exactly: dict[str, Any] = {"deviceClassName": device_class or class_name(), "count": count}
    if capacity:
        exactly["capacity"] = {"requests": dict(capacity)}
    return {"name": "gpu", "exactly": exactly}


def claim(
    name: str, namespace: str, request: Mapping[str, Any], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A ResourceClaim of one ``device_request``."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"devices": {"requests": [dict(request)]}},
    }


def claim_template(name: str, namespace: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """A ResourceClaimTemplate of one ``device_request`` (kube-controller-manager makes a claim
    of it for each pod that names it)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"spec": {"devices": {"requests": [dict(request)]}}},
    }


def use_claim(pod: dict[str, Any], *, claim_name: str = "", template_name: str = "") -> None:
    """Makes ``pod``'s first container use a claim (by name, or made from a template)."""
    entry = {"name": "gpu"}
    if claim_name:
        entry["resourceClaimName"] = claim_name
    else:
        entry["resourceClaimTemplateName"] = template_name
    pod["spec"]["resourceClaims"] = [entry]
    pod["spec"]["containers"][0]["resources"]["claims"] = [{"name": "gpu"}]


def allocation_results(
    api: client.ApiClient, namespace: str, capacity: str
) -> Iterator[tuple[dict[str, Any], str, str, int | None]]:
    """Per allocation result of the namespace's claims: (the claim, pool, device, what it
    consumes of ``capacity``, None when the result does not say)."""
    listing: Any = client.ResourceV1Api(api).list_namespaced_resource_claim(
        namespace, _preload_content=False
    )
    for item in json.loads(listing.data)["items"]:
        allocation = (item.get("status") or {}).get("allocation") or {}
        for result in allocation.get("devices", {}).get("results", []):
            consumed = (result.get("consumedCapacity") or {}).get(capacity)
            amount = quantity(consumed) if consumed is not None else None
            yield item, result["pool"], result["device"], amount


def slice_name(node: str) -> str:
    return f"{node}-{DRIVER}"


def slice_manifest(
    node: str,
    gpus: int,
    labels: Mapping[str, str],
    *,
    generation: int = 1,
    memory: str | None = None,
    capacity: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ResourceSlice of one node's ``gpus`` fake GPUs (product and clique from its labels).

    ``capacity``: each device's consumable capacity (default: its ``memory``), e.g.
    ``{COMPUTE: "1000"}`` for shares counted in thousandths of a GPU.
    """
    product = labels.get(GPU_PRODUCT_LABEL, "fake-gpu")
    memory = memory or MEMORY.get(product, DEFAULT_MEMORY)
    consumable = dict(capacity or {"memory": memory})
    devices = []
    for index in range(gpus):
        attributes: dict[str, Any] = {
            "productName": {"string": product},
            "memory": {"string": memory},
            "index": {"int": index},
        }
        if clique := labels.get(NVLINK_LABEL):
            attributes["clique"] = {"string": clique}
        devices.append(
            {
                "name": f"gpu-{index}",
                "attributes": attributes,
                "capacity": {name: {"value": value} for name, value in consumable.items()},
                "allowMultipleAllocations": True,
            }
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceSlice",
        "metadata": {"name": slice_name(node)},
        "spec": {
            "driver": DRIVER,
            "nodeName": node,
            "pool": {"name": node, "generation": generation, "resourceSliceCount": 1},
            "devices": devices,
        },
    }


def node_slice(node: FakeNode, **kwargs: Any) -> dict[str, Any]:
    labels = node.manifest()["metadata"]["labels"]
    return slice_manifest(node.name, node.gpus, labels, **kwargs)


def publish(
    api: client.ApiClient,
    nodes: Iterable[FakeNode],
    *,
    classes: bool = True,
    **slice_options: Any,
) -> None:
    """Creates (or replaces) the slices of ``nodes`` and, with ``classes``, the DeviceClasses."""
    resource = client.ResourceV1Api(api)
    if classes:
        for device_class in device_classes():
            class_body: Any = device_class  # the client takes plain dicts as bodies
            try:
                resource.create_device_class(class_body, _preload_content=False)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
    for node in nodes:
        put_slice(api, node_slice(node, **slice_options))


def put_slice(api: client.ApiClient, body: Mapping[str, Any]) -> None:
    """Creates the ResourceSlice, or replaces the one of that name."""
    resource = client.ResourceV1Api(api)
    name = body["metadata"]["name"]
    created: Any = dict(body)
    try:
        resource.create_resource_slice(created, _preload_content=False)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        current: Any = resource.read_resource_slice(name, _preload_content=False)
        version = json.loads(current.data)["metadata"]["resourceVersion"]
        replaced: Any = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        resource.replace_resource_slice(name, replaced, _preload_content=False)


def withdraw(api: client.ApiClient, nodes: Iterable[str]) -> None:
    """Deletes the slices of ``nodes`` (as when the driver leaves them)."""
    resource = client.ResourceV1Api(api)
    for node in nodes:
        try:
            resource.delete_resource_slice(slice_name(node), _preload_content=False)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
