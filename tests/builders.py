"""Builders for Kubernetes JSON objects and domain objects used across tests."""

from __future__ import annotations

import uuid
from typing import Any

from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from scheduler_extender.domain.objects import Node, Pod

AGENT_LABEL = "scheduler-extender.io/agent"
GPU = "nvidia.com/gpu"
GPU_PRODUCT = "nvidia.com/gpu.product"


def node_json(
    name: str,
    gpus: int = 8,
    *,
    cpu: str = "64",
    memory: str = "512Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": str(pods), GPU: str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {"capacity": dict(allocatable), "allocatable": allocatable},
    }


def pod_json(
    name: str,
    gpus: int = 1,
    *,
    namespace: str = "default",
    agent: str | None = None,
    node: str = "",
    uid: str | None = None,
    cpu: str = "1",
    memory: str = "1Gi",
    priority: int | None = None,
    owner: dict[str, Any] | None = None,
    scheduler: str = "gpu-scheduler",
    phase: str = "Pending",
    node_selector: dict[str, str] | None = None,
    gpu_models: list[str] | None = None,
) -> dict[str, Any]:
    """``gpu_models``: required node affinity on ``nvidia.com/gpu.product`` (In)."""
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    limits: dict[str, str] = {}
    if gpus:
        requests[GPU] = str(gpus)
        limits[GPU] = str(gpus)
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or str(uuid.uuid4()),
        "labels": {AGENT_LABEL: agent} if agent else {},
    }
    if owner:
        meta["ownerReferences"] = [owner]
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "containers": [
            {"name": "main", "image": "x", "resources": {"requests": requests, "limits": limits}}
        ],
    }
    if node:
        spec["nodeName"] = node
    if priority is not None:
        spec["priority"] = priority
    if node_selector:
        spec["nodeSelector"] = node_selector
    if gpu_models:
        expression = {"key": GPU_PRODUCT, "operator": "In", "values": gpu_models}
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                }
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase},
    }


def node(name: str, gpus: int = 8, **kwargs: Any) -> Node:
    return node_from_json(node_json(name, gpus, **kwargs))


def pod(name: str, gpus: int = 1, **kwargs: Any) -> Pod:
    return pod_from_json(pod_json(name, gpus, **kwargs), AGENT_LABEL)
