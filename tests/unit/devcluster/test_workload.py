from __future__ import annotations

import json

import pytest

from scheduler_extender.config import Settings
from scheduler_extender.devcluster import workload


def test_skewed_agents_share_out_every_replica_by_popularity() -> None:
    agents = workload.skewed_agents(8, total_replicas=32)
    assert sum(a.replicas for a in agents) == 32
    assert all(a.replicas >= 1 for a in agents)
    rates = [a.rate for a in agents]
    replicas = [a.replicas for a in agents]
    assert rates == sorted(rates, reverse=True)
    assert replicas == sorted(replicas, reverse=True)
    assert rates[0] / rates[-1] > 5  # skewed, not uniform
    assert len({a.name for a in agents}) == 8


def test_skewed_agents_needs_a_replica_each() -> None:
    with pytest.raises(ValueError, match="one replica per agent"):
        workload.skewed_agents(4, total_replicas=3)


def test_gpu_pod_requests_and_limits_gpus() -> None:
    pod = workload.gpu_pod(
        "p", namespace="ns", scheduler_name="gpu-scheduler", gpus=2, agent="a",
        node_selector={"k": "v"}, tolerations=[{"key": "k", "operator": "Exists"}],
    )  # fmt: skip
    spec = pod["spec"]
    resources = spec["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "2"
    assert spec["schedulerName"] == "gpu-scheduler"
    assert pod["metadata"]["labels"] == {workload.AGENT_LABEL: "a"}
    assert spec["nodeSelector"] == {"k": "v"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    cpu_only = workload.gpu_pod("c", namespace="ns", scheduler_name="s", gpus=0)
    assert "nvidia.com/gpu" not in cpu_only["spec"]["containers"][0]["resources"]["requests"]


def test_agent_deployment_selects_its_own_pods() -> None:
    agent = workload.Agent("agent-00", 100.0, 3, 1)
    deployment = workload.agent_deployment(
        agent, namespace="agents", scheduler_name="gpu-scheduler"
    )
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    assert template_labels[workload.AGENT_LABEL] == "agent-00"


def test_popularity_env_is_read_by_the_extender_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    agents = workload.skewed_agents(3, total_replicas=6)
    for name, value in workload.popularity_env(agents).items():
        monkeypatch.setenv(name, value)
    assert Settings().static_popularity == {a.name: a.rate for a in agents}
    assert json.loads(workload.popularity_env(agents)["SCHEDULER_EXTENDER_STATIC_POPULARITY"])


def test_gpu_models_become_a_required_node_affinity() -> None:
    spec = workload.pod_spec(scheduler_name="s", gpus=1, gpu_models=["T4", "P100"])
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term == {
        "matchExpressions": [
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["T4", "P100"]}
        ]
    }
    assert "affinity" not in workload.pod_spec(scheduler_name="s", gpus=1)
