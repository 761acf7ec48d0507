"""Pod-level resources (KEP-2837): ``spec.resources`` against the containers' aggregate."""

from __future__ import annotations

from typing import Any

from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.resources import Resources
from tests.builders import AGENT_LABEL, GPU, pod_json

GI = 1024**3


def requests_of(raw: dict[str, Any], **pod_level: dict[str, str]) -> Resources:
    raw["spec"]["resources"] = pod_level
    return pod_from_json(raw, AGENT_LABEL).requests


def test_pod_level_requests_replace_the_containers_cpu_and_memory() -> None:
    raw = pod_json("p", 2, cpu="500m", memory="1Gi")
    raw["spec"]["containers"].append(
        {"name": "two", "resources": {"requests": {"cpu": "3", "memory": "3Gi"}}}
    )
    requests = requests_of(raw, requests={"cpu": "2", "memory": "2Gi"})
    assert requests.get("cpu") == 2000  # not 3500m, the containers' sum
    assert requests.get("memory") == 2 * GI
    assert requests.get(GPU) == 2  # extended resources still come from containers
    assert requests.get("pods") == 1


def test_overhead_is_added_to_the_pod_level_requests_and_init_containers_are_not() -> None:
    raw = pod_json("p", 1, cpu="100m", memory="64Mi")
    raw["spec"]["initContainers"] = [
        {"name": "init", "resources": {"requests": {"cpu": "8", "ephemeral-storage": "1Gi"}}}
    ]
    raw["spec"]["overhead"] = {"cpu": "250m"}
    requests = requests_of(raw, requests={"cpu": "1"})
    assert requests.get("cpu") == 1250  # the pod-level 1 plus overhead, not the 8-cpu init
    assert requests.get("memory") == 64 * 1024**2  # not set at pod level: containers'
    assert requests.get("ephemeral-storage") == GI  # not a pod-level resource


def test_a_pod_level_limit_stands_for_a_missing_request_only_where_containers_set_none() -> None:
    raw = pod_json("p", 1, cpu="500m", memory="0")
    del raw["spec"]["containers"][0]["resources"]["requests"]["memory"]
    requests = requests_of(raw, limits={"cpu": "4", "memory": "8Gi"})
    # API defaulting: cpu requested by the containers keeps their aggregate;
    # memory, which no container requests, defaults to the pod-level limit.
    assert requests.get("cpu") == 500
    assert requests.get("memory") == 8 * GI


def test_hugepages_are_pod_level_resources() -> None:
    raw = pod_json("p", 1)
    raw["spec"]["containers"][0]["resources"]["requests"]["hugepages-2Mi"] = "64Mi"
    requests = requests_of(raw, requests={"hugepages-2Mi": "128Mi"})
    assert requests.get("hugepages-2Mi") == 128 * 1024**2
    limited = requests_of(pod_json("q", 1), limits={"hugepages-1Gi": "2Gi"})
    assert limited.get("hugepages-1Gi") == 2 * GI


def test_other_resources_at_pod_level_are_ignored() -> None:
    requests = requests_of(pod_json("p", 2), requests={GPU: "8", "example.com/fpga": "1"})
    assert requests.get(GPU) == 2
    assert requests.get("example.com/fpga") == 0


def test_empty_pod_level_resources_change_nothing() -> None:
    raw = pod_json("p", 1, cpu="750m")
    assert requests_of(raw).get("cpu") == 750
