"""Kubernetes JSON to domain objects: effective requests, affinity, owners."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from tests.builders import AGENT_LABEL, node_json, pod_json


def test_effective_requests_follow_kube_scheduler() -> None:
    raw = pod_json("p", 2, cpu="500m", memory="1Gi")
    raw["spec"]["initContainers"] = [
        {"name": "init", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}},
        {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
    ]
    raw["spec"]["overhead"] = {"cpu": "50m"}
    raw["spec"]["containers"].append({"name": "two", "resources": {"limits": {"memory": "1Gi"}}})
    requests = pod_from_json(raw, AGENT_LABEL).requests
    # app containers 500m + sidecar 100m = 600m < init 2000m; plus overhead 50m.
    assert requests.get("cpu") == 2050
    # memory: 1Gi + 1Gi (limit used as the request).
    assert requests.get("memory") == 2 * 1024**3
    assert requests.get("nvidia.com/gpu") == 2
    assert requests.get("pods") == 1


def test_pod_fields_are_mapped() -> None:
    raw = pod_json(
        "p", 1, agent="llama", priority=100,
        owner={"kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": True},
    )  # fmt: skip
    raw["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "z", "operator": "In", "values": ["1"]}]}
                ]
            }
        },
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []},
    }
    raw["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    p = pod_from_json(raw, AGENT_LABEL)
    assert p.agent == "llama"
    assert p.priority == 100
    assert p.owner is not None
    assert p.owner.kind == "ReplicaSet"
    assert p.required_affinity[0].expressions[0].values == ("1",)
    assert p.has_pod_level_constraints
    assert p.tolerations[0].operator == "Exists"


def test_node_uses_allocatable_and_parses_quantities() -> None:
    n = node_from_json(node_json("n", 4, cpu="3500m", memory="2Gi"))
    assert n.allocatable.get("cpu") == 3500
    assert n.allocatable.get("memory") == 2 * 1024**3
    assert n.allocatable.get("nvidia.com/gpu") == 4


@pytest.mark.parametrize("bad", ["-2", "2x", "", "1e999"])
def test_invalid_quantities_are_validation_errors(bad: str) -> None:
    raw = node_json("n")
    raw["status"]["allocatable"]["cpu"] = bad
    with pytest.raises(ValidationError, match="cpu"):
        node_from_json(raw)


def test_nominated_node_name_is_read_from_the_status() -> None:
    raw = pod_json("p", 1)
    assert pod_from_json(raw, AGENT_LABEL).nominated_node_name == ""
    raw["status"]["nominatedNodeName"] = "n1"
    p = pod_from_json(raw, AGENT_LABEL)
    assert p.nominated_node_name == "n1"
    assert p.nominated
    raw["spec"]["nodeName"] = "n2"
    assert not pod_from_json(raw, AGENT_LABEL).nominated  # bound: the nomination is spent
