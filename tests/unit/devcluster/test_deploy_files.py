"""deploy/kwok, kind-config.yaml and the kind-up recipe agree with the local control plane."""

from __future__ import annotations

import re

import yaml

from scheduler_extender.devcluster import cluster, nodes
from scheduler_extender.devcluster.paths import kwok_dir, repo_root
from scheduler_extender.devcluster.tools import tool_dirs

STAGES = {"gpu-node-ready", "gpu-node-heartbeat", "gpu-pod-running", "gpu-pod-delete"}


def test_stages_cover_node_and_pod_lifecycles() -> None:
    stages = list(yaml.safe_load_all((kwok_dir() / "stages.yaml").read_text()))
    assert {s["metadata"]["name"] for s in stages} == STAGES
    for stage in stages:
        assert stage["apiVersion"] == "kwok.x-k8s.io/v1alpha1"
        assert stage["kind"] == "Stage"
        assert stage["spec"]["resourceRef"]["kind"] in ("Node", "Pod")
        assert stage["spec"]["selector"]["matchExpressions"]
        assert stage["spec"]["steps"]


def test_pod_running_stage_plays_once_per_pod() -> None:
    """A replay on a stale object must neither match a pod with an IP nor append a second IP."""
    stages = {
        s["metadata"]["name"]: s
        for s in yaml.safe_load_all((kwok_dir() / "stages.yaml").read_text())
    }
    running = stages["gpu-pod-running"]["spec"]
    (selector,) = running["selector"]["matchExpressions"]
    expression = " ".join(selector["cel"]["expression"].split())
    assert "self.status.phase == 'Pending'" in expression
    assert "self.status.podIP == ''" in expression
    (step,) = running["steps"]
    assert step["patch"].get("type", "strategic") == "strategic"  # kwok's default for pods
    template = step["patch"]["template"]
    assert "podIPs: [{$patch: replace}, {ip:" in template


def kind_up_recipe() -> str:
    makefile = (repo_root() / "mk" / "cluster.mk").read_text()
    match = re.search(r"^kind-up:.*?\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert match, "mk/cluster.mk has no kind-up recipe"
    return match.group(1)


def test_kind_config_is_a_kind_cluster_on_loopback() -> None:
    config = yaml.safe_load((repo_root() / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"
    assert [n["role"] for n in config["nodes"]].count("control-plane") == 1


def test_kind_up_uses_the_same_kwok_stages_templates_and_chart() -> None:
    recipe = kind_up_recipe()
    assert "--config kind-config.yaml" in recipe
    assert "deploy/kwok/stages.yaml" in recipe
    assert "deploy/kwok/kwok-controller.yaml" in recipe
    assert "$(CHART_DIR)" in recipe  # the chart renders deploy/scheduler-config.yaml's values
    assert "scheduler-extender fake-nodes" in recipe  # nodes from deploy/kwok/gpu-node-*.yaml


def test_in_cluster_kwok_runs_the_pinned_version_like_the_local_one() -> None:
    docs = list(yaml.safe_load_all((kwok_dir() / "kwok-controller.yaml").read_text()))
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    version = tool_dirs()["kwok"][0]
    assert container["image"] == f"registry.k8s.io/kwok/kwok:{version}"
    args = container["args"]
    assert f"--manage-nodes-with-annotation-selector={cluster.KWOK_NODE_SELECTOR}" in args
    assert "--config=/etc/kwok/stages.yaml" in args
    key, value = cluster.KWOK_NODE_SELECTOR.split("=")
    for gpus in nodes.GPU_SHAPES:
        assert nodes.template(gpus)["metadata"]["annotations"][key] == value
