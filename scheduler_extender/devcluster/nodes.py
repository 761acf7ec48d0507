"""Fake GPU nodes from the templates in deploy/kwok/, for any cluster running kwok.

A node's name, hostname and topology labels are set from its index so that
a fleet looks like a datacenter: ``NODES_PER_RACK`` nodes share a rack (and,
for multi-GPU nodes, an NVLink domain), ``RACKS_PER_ZONE`` racks share a zone.
"""

from __future__ import annotations

import json
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from kubernetes import client

from scheduler_extender.devcluster.paths import kwok_dir

GPU_SHAPES = (1, 4, 8)
# Cycled by the "mix" layout: mostly large nodes, some small ones.
MIX = (8, 4, 8, 1)
NODES_PER_RACK = 4
RACKS_PER_ZONE = 4
ZONE_LABEL = "topology.kubernetes.io/zone"
RACK_LABEL = "topology.scheduler-extender.io/rack"
NVLINK_LABEL = "nvidia.com/gpu.clique"
HOSTNAME_LABEL = "kubernetes.io/hostname"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
GPU_RESOURCE = "nvidia.com/gpu"
FAKE_NODE_LABEL = "type"  # "kwok" on every template
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
CREATE_PARALLELISM = 8


class NodeLayoutError(ValueError):
    pass


@cache
def _template(gpus: int) -> str:
    if gpus not in GPU_SHAPES:
        raise NodeLayoutError(f"no node template with {gpus} GPUs; there are {GPU_SHAPES}")
    return (kwok_dir() / f"gpu-node-{gpus}.yaml").read_text()


def template(gpus: int) -> dict[str, Any]:
    """A fresh copy of deploy/kwok/gpu-node-<gpus>.yaml."""
    node: dict[str, Any] = yaml.safe_load(_template(gpus))
    return node


def layout(count: int, gpus: str | int) -> list[int]:
    """GPUs per node for ``count`` nodes: one shape for all, or "mix"."""
    if count < 0:
        raise NodeLayoutError("the node count cannot be negative")
    if gpus == "mix":
        return [MIX[i % len(MIX)] for i in range(count)]
    try:
        shape = int(gpus)
    except ValueError:
        raise NodeLayoutError(f"GPUs per node must be one of {GPU_SHAPES} or 'mix'") from None
    if shape not in GPU_SHAPES:
        raise NodeLayoutError(f"GPUs per node must be one of {GPU_SHAPES} or 'mix', not {shape}")
    return [shape] * count


def zone_name(index: int) -> str:
    zone = index // (NODES_PER_RACK * RACKS_PER_ZONE)
    letters = string.ascii_lowercase
    return f"zone-{letters[zone % len(letters)]}{zone // len(letters) or ''}"


@dataclass(frozen=True, slots=True)
class FakeNode:
    name: str
    gpus: int
    index: int

    def manifest(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] = (),
        capacity: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``capacity``: resources replacing the template's (capacity and allocatable).

        A GPU count without a template of its own (e.g. 2) starts from the
        largest template, with its GPU count changed.
        """
        node = template(self.gpus if self.gpus in GPU_SHAPES else max(GPU_SHAPES))
        status = node["status"]
        for key in ("capacity", "allocatable"):
            status[key][GPU_RESOURCE] = str(self.gpus)
            status[key].update(capacity or {})
        meta = node["metadata"]
        meta["name"] = self.name
        node_labels: dict[str, str] = meta.setdefault("labels", {})
        rack = self.index // NODES_PER_RACK
        node_labels[HOSTNAME_LABEL] = self.name
        node_labels[GPU_COUNT_LABEL] = str(self.gpus)
        node_labels[ZONE_LABEL] = zone_name(self.index)
        node_labels[RACK_LABEL] = f"rack-{rack}"
        if NVLINK_LABEL in node_labels:  # only multi-GPU templates have an NVLink domain
            node_labels[NVLINK_LABEL] = f"nvl-{rack}"
        node_labels.update(labels or {})
        if taints:
            node.setdefault("spec", {})["taints"] = [dict(t) for t in taints]
        return node


def fleet(
    count: int, gpus: str | int = "mix", *, prefix: str = "gpu", start: int = 0
) -> list[FakeNode]:
    """``count`` nodes named ``<prefix>-<n>g-<index>``."""
    return [
        FakeNode(f"{prefix}-{shape}g-{start + i:04d}", shape, start + i)
        for i, shape in enumerate(layout(count, gpus))
    ]


def create_nodes(
    api: client.ApiClient,
    nodes: Iterable[FakeNode],
    *,
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
) -> list[str]:
    """Creates the nodes (in parallel); returns the names that already existed."""
    return create_manifests(api, [n.manifest(labels=labels, taints=taints) for n in nodes])


def create_manifests(api: client.ApiClient, manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Creates nodes from their manifests (in parallel); returns the names that already existed."""
    core = client.CoreV1Api(api)

    def create(manifest: Mapping[str, Any]) -> str | None:
        try:
            body: Any = dict(manifest)
            core.create_node(body, _preload_content=False)
        except client.ApiException as exc:
            if exc.status == 409:
                return str(manifest["metadata"]["name"])
            raise
        return None

    with ThreadPoolExecutor(CREATE_PARALLELISM) as pool:
        existing = [name for name in pool.map(create, list(manifests)) if name is not None]
    return existing


def delete_nodes(api: client.ApiClient, names: Iterable[str]) -> None:
    core = client.CoreV1Api(api)

    def delete(name: str) -> None:
        try:
            core.delete_node(name, _preload_content=False)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    with ThreadPoolExecutor(CREATE_PARALLELISM) as pool:
        list(pool.map(delete, list(names)))


def schedulable(node: Mapping[str, Any]) -> bool:
    """Ready and no longer carrying the not-ready taint every new node starts with."""
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = node.get("spec", {}).get("taints") or []
    return ready and not any(t.get("key") == NOT_READY_TAINT for t in taints)


def wait_schedulable(
    api: client.ApiClient,
    names: Iterable[str],
    *,
    timeout: float = 120.0,
    alive: Callable[[], None] | None = None,
) -> None:
    """Waits until kwok made every node Ready and the node controller untainted it.

    ``alive`` raises if the cluster broke meanwhile (e.g. ``LocalCluster.check_alive``).
    """
    core = client.CoreV1Api(api)
    waiting = set(names)
    deadline = time.monotonic() + timeout
    while waiting:
        if alive is not None:
            alive()
        response: Any = core.list_node(_preload_content=False)
        for node in json.loads(response.data)["items"]:
            if node["metadata"]["name"] in waiting and schedulable(node):
                waiting.discard(node["metadata"]["name"])
        if not waiting:
            return
        if time.monotonic() > deadline:
            sample = ", ".join(sorted(waiting)[:5])
            raise TimeoutError(
                f"{len(waiting)} fake nodes not schedulable after {timeout:.0f}s "
                f"(e.g. {sample}); is kwok running with deploy/kwok/stages.yaml?"
            )
        time.sleep(0.5)


def cordon(api: client.ApiClient, name: str, on: bool = True) -> None:
    """Marks a node unschedulable (``on``) or schedulable again."""
    client.CoreV1Api(api).patch_node(name, {"spec": {"unschedulable": on}})
