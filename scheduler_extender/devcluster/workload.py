"""Synthetic GPU workloads: agent pods and Deployments with skewed popularity.

An *agent* is a model server; its pods carry the agent label the extender
reads. Popularity follows a Zipf law, as request traffic across models does:
the i-th most popular agent gets ``peak_rate / i**exponent`` requests/s, and
replicas are shared out in proportion to the rates (at least one each).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from scheduler_extender.config import Settings

AGENT_LABEL: str = Settings.model_fields["agent_label"].default
GPU_RESOURCE: str = Settings.model_fields["gpu_resource"].default
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# Never pulled: kwok only pretends to run containers.
IMAGE = "registry.k8s.io/pause:3.10"
CREATE_PARALLELISM = 8


def pod_spec(
    *,
    scheduler_name: str,
    gpus: int,
    cpu: str = "1",
    memory: str = "4Gi",
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, str]] = (),
    gpu_models: Sequence[str] = (),
) -> dict[str, Any]:
    """``gpu_models``: the GPU models allowed (required node affinity on ``nvidia.com/gpu.product``)."""
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
    if gpus:
        resources["requests"][GPU_RESOURCE] = str(gpus)
        resources["limits"] = {GPU_RESOURCE: str(gpus)}
    spec: dict[str, Any] = {
        "schedulerName": scheduler_name,
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "server", "image": IMAGE, "resources": resources}],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    if gpu_models:
        expressions = [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": list(gpu_models)}]
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": expressions}]
                }
            }
        }
    return spec


def gpu_pod(
    name: str,
    *,
    namespace: str,
    scheduler_name: str,
    gpus: int = 1,
    agent: str | None = None,
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A bare pod (no owner) requesting ``gpus`` GPUs; ``spec`` goes to ``pod_spec``."""
    pod_labels = dict(labels or {})
    if agent:
        pod_labels[AGENT_LABEL] = agent
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        "spec": pod_spec(scheduler_name=scheduler_name, gpus=gpus, **spec),
    }


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    rate: float  # requests/s this agent serves
    replicas: int
    gpus: int  # per replica


def skewed_agents(
    count: int = 8,
    *,
    total_replicas: int = 32,
    peak_rate: float = 400.0,
    exponent: float = 1.2,
    gpus: Sequence[int] = (1, 1, 2, 1),
) -> list[Agent]:
    """``count`` agents with Zipf popularity; replicas follow the rates."""
    if count <= 0 or total_replicas < count:
        raise ValueError("need at least one agent and one replica per agent")
    rates = [peak_rate / (i + 1) ** exponent for i in range(count)]
    spare = total_replicas - count  # everyone gets one; the rest goes by rate
    shares = [spare * r / sum(rates) for r in rates]
    extra = [int(s) for s in shares]
    # Largest remainders get the replicas that rounding down left over.
    by_remainder = sorted(range(count), key=lambda i: shares[i] - extra[i], reverse=True)
    for i in by_remainder[: spare - sum(extra)]:
        extra[i] += 1
    return [
        Agent(f"agent-{i:02d}", round(rates[i], 3), 1 + extra[i], gpus[i % len(gpus)])
        for i in range(count)
    ]


def agent_deployment(
    agent: Agent, *, namespace: str, scheduler_name: str, **spec: Any
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": agent.name, AGENT_LABEL: agent.name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": agent.name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": agent.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec(scheduler_name=scheduler_name, gpus=agent.gpus, **spec),
            },
        },
    }


def popularity_env(agents: Iterable[Agent]) -> dict[str, str]:
    """Environment that hands the agents' rates to the extender as static popularity."""
    rates = {a.name: a.rate for a in agents}
    return {"SCHEDULER_EXTENDER_STATIC_POPULARITY": json.dumps(rates)}


def ensure_namespace(api: client.ApiClient, name: str, *, timeout: float = 30.0) -> None:
    """Creates the namespace and waits for its default ServiceAccount.

    Pods are refused until kube-controller-manager has made that account.
    """
    core = client.CoreV1Api(api)
    try:
        # Plain dicts: the client serialises them as they are.
        body: Any = {"metadata": {"name": name}}
        core.create_namespace(body, _preload_content=False)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", name, _preload_content=False)
            return
        except client.ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def create_deployments(api: client.ApiClient, deployments: Iterable[Mapping[str, Any]]) -> None:
    apps = client.AppsV1Api(api)
    for deployment in deployments:
        body: Any = dict(deployment)
        apps.create_namespaced_deployment(
            body["metadata"]["namespace"], body, _preload_content=False
        )


def create_pods(api: client.ApiClient, pods: Iterable[Mapping[str, Any]]) -> None:
    """Creates bare pods, several at a time (the API server takes them concurrently)."""
    core = client.CoreV1Api(api)

    def create(pod: Mapping[str, Any]) -> None:
        body: Any = dict(pod)
        core.create_namespaced_pod(body["metadata"]["namespace"], body, _preload_content=False)

    with ThreadPoolExecutor(CREATE_PARALLELISM) as pool:
        list(pool.map(create, list(pods)))
