"""Builders for resource.k8s.io/v1 JSON objects (DRA) used across tests."""

from __future__ import annotations

from typing import Any

from scheduler_extender.devcluster import dra

DRIVER = dra.DRIVER


def slice_json(
    node: str,
    gpus: int = 8,
    *,
    product: str = "H100",
    memory: str = "80Gi",
    clique: str = "",
    shared: bool = True,
    generation: int = 1,
    name: str | None = None,
) -> dict[str, Any]:
    devices = []
    for i in range(gpus):
        attributes: dict[str, Any] = {
            "productName": {"string": product},
            "index": {"int": i},
        }
        if clique:
            attributes["clique"] = {"string": clique}
        device: dict[str, Any] = {
            "name": f"gpu-{i}",
            "attributes": attributes,
            "capacity": {"memory": {"value": memory}},
        }
        if shared:
            device["allowMultipleAllocations"] = True
        devices.append(device)
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name or f"{node}-{DRIVER}", "resourceVersion": "1"},
        "spec": {
            "driver": DRIVER,
            "pool": {"name": node, "generation": generation, "resourceSliceCount": 1},
            "nodeName": node,
            "devices": devices,
        },
    }


def device_class_json(name: str = "gpu", product: str | None = None) -> dict[str, Any]:
    expression = f'device.driver == "{DRIVER}"'
    if product:
        expression += f' && device.attributes["{DRIVER}"].productName == "{product}"'
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"selectors": [{"cel": {"expression": expression}}]},
    }


def claim_json(
    name: str,
    *,
    namespace: str = "default",
    device_class: str = "gpu",
    count: int = 1,
    memory: str | None = None,
    allocated: list[tuple[str, str]] | None = None,
    consumed: str | None = None,
) -> dict[str, Any]:
    """``allocated``: (pool, device) per result; ``consumed``: each result's memory."""
    capacity = {"memory": memory} if memory else None
    request = dra.device_request(count, capacity=capacity, device_class=device_class)
    claim = dra.claim(name, namespace, request)
    claim["metadata"] |= {"uid": f"uid-{name}", "resourceVersion": "1"}
    if allocated is not None:
        results = []
        for i, (pool, device) in enumerate(allocated):
            result: dict[str, Any] = {
                "request": "gpu",
                "driver": DRIVER,
                "pool": pool,
                "device": device,
            }
            if consumed:
                result["consumedCapacity"] = {"memory": consumed}
                result["shareID"] = f"share-{name}-{i}"
            results.append(result)
        claim["status"] = {"allocation": {"devices": {"results": results}}}
    return claim
