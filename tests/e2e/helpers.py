"""Helpers for e2e tests on the local control plane (see conftest.py for the fixtures)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from scheduler_extender.devcluster import nodes, workload

GPU = workload.GPU_RESOURCE
POOL_LABEL = "e2e.scheduler-extender.io/pool"

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.25
) -> T:
    """Polls ``probe`` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def list_pods(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    response: Any = client.CoreV1Api(api).list_namespaced_pod(namespace, _preload_content=False)
    pods: list[dict[str, Any]] = json.loads(response.data)["items"]
    return pods


def bound(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [p for p in pods if p["spec"].get("nodeName")]


def placement(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Bound pod -> its node."""
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in bound(list_pods(api, namespace))}


def submit_one_by_one(
    api: client.ApiClient, namespace: str, pods: list[dict[str, Any]]
) -> dict[str, str]:
    """Creates each pod once the previous one is bound; returns pod -> node."""
    for pod in pods:
        name: str = pod["metadata"]["name"]
        workload.create_pods(api, [pod])

        def done(name: str = name) -> bool:
            return name in placement(api, namespace)

        wait_for(f"{name} bound", done, timeout=60)
    return placement(api, namespace)


def events_for(api: client.ApiClient, namespace: str, pod: str) -> list[dict[str, Any]]:
    response: Any = client.CoreV1Api(api).list_namespaced_event(
        namespace,
        field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}",
        _preload_content=False,
    )
    events: list[dict[str, Any]] = json.loads(response.data)["items"]
    return events


def gpu_request(pod: Mapping[str, Any]) -> int:
    return sum(
        int(c.get("resources", {}).get("requests", {}).get(GPU, 0))
        for c in pod["spec"]["containers"]
    )


def overallocated(api: client.ApiClient) -> dict[str, tuple[int, int]]:
    """Nodes whose running pods request more GPUs than the node has: node -> (requested, allocatable)."""
    core = client.CoreV1Api(api)
    node_list: Any = core.list_node(_preload_content=False)
    capacity = {
        n["metadata"]["name"]: int(n["status"].get("allocatable", {}).get(GPU, 0))
        for n in json.loads(node_list.data)["items"]
    }
    pod_list: Any = core.list_pod_for_all_namespaces(_preload_content=False)
    requested: Counter[str] = Counter()
    for pod in json.loads(pod_list.data)["items"]:
        node = pod["spec"].get("nodeName")
        if node and pod["status"].get("phase") not in ("Succeeded", "Failed"):
            requested[node] += gpu_request(pod)
    return {n: (r, capacity.get(n, 0)) for n, r in requested.items() if r > capacity.get(n, 0)}


def extender_decisions(metrics_url: str) -> Counter[tuple[str, str]]:
    """scheduler_extender_decisions_total as (verb, outcome) -> count."""
    text = httpx.get(metrics_url, timeout=5.0).text
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "scheduler_extender_decisions":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counts[(sample.labels["verb"], sample.labels["outcome"])] += int(sample.value)
    return counts


def verb_total(decisions: Mapping[tuple[str, str], int], verb: str) -> int:
    return sum(n for (v, _), n in decisions.items() if v == verb)


@dataclass
class NodePool:
    """Fake GPU nodes private to one test.

    The nodes carry ``POOL_LABEL=<name>`` and a NoSchedule taint of the same
    key, so only pods built by ``pod()`` (which select and tolerate them)
    land there, and other tests' pods never do.
    """

    name: str
    api: client.ApiClient
    scheduler_name: str
    fleet: list[nodes.FakeNode] = field(default_factory=list)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.fleet]

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self.fleet)

    @property
    def placement(self) -> dict[str, Any]:
        """``pod_spec`` arguments that pin a pod to this pool."""
        return {
            "node_selector": {POOL_LABEL: self.name},
            "tolerations": [
                {"key": POOL_LABEL, "operator": "Equal", "value": self.name, "effect": "NoSchedule"}
            ],
        }

    def add(self, count: int, gpus: str | int = "mix") -> list[nodes.FakeNode]:
        added = nodes.fleet(count, gpus, prefix=f"{self.name}", start=len(self.fleet))
        nodes.create_nodes(
            self.api,
            added,
            labels={POOL_LABEL: self.name},
            taints=[{"key": POOL_LABEL, "value": self.name, "effect": "NoSchedule"}],
        )
        self.fleet.extend(added)
        nodes.wait_schedulable(self.api, [n.name for n in added])
        return added

    def pod(
        self, name: str, *, namespace: str, gpus: int = 1, agent: str | None = None, **spec: Any
    ) -> dict[str, Any]:
        """A GPU pod for our scheduler profile that can only land in this pool."""
        return workload.gpu_pod(
            name,
            namespace=namespace,
            scheduler_name=self.scheduler_name,
            gpus=gpus,
            agent=agent,
            **{**self.placement, **spec},
        )

    def delete(self) -> None:
        nodes.delete_nodes(self.api, self.node_names)


def gpu_deployment(
    name: str,
    namespace: str,
    pool: NodePool,
    priority_class: str,
    *,
    gpus: int = 4,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A one-replica Deployment of GPU pods pinned to ``pool``, at ``priority_class``."""
    spec = workload.pod_spec(scheduler_name=pool.scheduler_name, gpus=gpus, **pool.placement)
    spec["priorityClassName"] = priority_class
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, **(labels or {})}}, "spec": spec},
        },
    }
