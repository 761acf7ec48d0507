"""The chart's KubeSchedulerConfiguration agrees with deploy/scheduler-config.yaml, and the real
kube-scheduler binary loads and validates it: the extender on loopback, a binder that is never
ignorable."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart.conftest import REPO, Render, component, one, tool

DEPLOY = REPO / "deploy" / "scheduler-config.yaml"
# Any release: the extender's address is the pod's loopback, whatever the release and namespace.
RELEASE = NAMESPACE = "scheduler-extender"


def chart_config(render: Render, **kwargs: Any) -> dict[str, Any]:
    manifests = render(release=RELEASE, namespace=NAMESPACE, **kwargs)
    configmap = one(manifests, "ConfigMap", f"{RELEASE}-scheduler")
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    return config


def test_the_extender_entry_and_profile_equal_the_deploy_file(render: Render) -> None:
    deploy = yaml.safe_load(DEPLOY.read_text())
    chart = chart_config(render)
    assert chart["apiVersion"] == deploy["apiVersion"]
    assert chart["kind"] == deploy["kind"]
    assert chart["profiles"] == deploy["profiles"]
    assert chart["extenders"] == deploy["extenders"]


@pytest.mark.parametrize(("release", "namespace"), [("rel", "ns"), ("gpu", "kube-system")])
def test_the_extender_entry_does_not_depend_on_the_release(
    render: Render, release: str, namespace: str
) -> None:
    manifests = render(release=release, namespace=namespace)
    configmap = one(manifests, "ConfigMap", f"{release}-scheduler-extender-scheduler")
    chart = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    assert chart["extenders"] == yaml.safe_load(DEPLOY.read_text())["extenders"]


def test_the_extender_is_on_loopback_and_not_ignorable(render: Render) -> None:
    (extender,) = chart_config(render)["extenders"]
    assert extender["urlPrefix"] == "http://127.0.0.1:8888/scheduler"
    assert extender["enableHTTPS"] is False
    assert extender["bindVerb"] == "bind"
    assert extender["ignorable"] is False


def test_only_the_lease_differs_from_the_deploy_file(render: Render) -> None:
    """The chart's scheduler elects on a Lease of its release, in its release's namespace."""
    deploy = yaml.safe_load(DEPLOY.read_text())
    chart = chart_config(render)
    differing = {k for k in set(chart) | set(deploy) if chart.get(k) != deploy.get(k)}
    assert differing <= {"leaderElection", "percentageOfNodesToScore"}
    assert chart["leaderElection"]["resourceName"] == f"{RELEASE}-scheduler"
    assert chart["leaderElection"]["resourceNamespace"] == NAMESPACE


def test_values_reach_the_extender_entry(render: Render) -> None:
    chart = chart_config(
        render,
        set_values=[
            "schedulerName=batch",
            "scheduler.extender.weight=9",
            "scheduler.extender.httpTimeout=30s",
            "scheduler.extender.nodeCacheCapable=false",
            "extender.urlPrefix=/x",
            "extender.port=9000",
        ],
        set_json=['scheduler.extender.managedResources=[{"name":"example.com/tpu"}]'],
    )
    (extender,) = chart["extenders"]
    assert chart["profiles"] == [{"schedulerName": "batch"}]
    assert extender == {
        "urlPrefix": "http://127.0.0.1:9000/x",
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "bindVerb": "bind",
        "preemptVerb": "preempt",
        "weight": 9,
        "httpTimeout": "30s",
        "nodeCacheCapable": False,
        "ignorable": False,
        "managedResources": [{"name": "example.com/tpu"}],
        "enableHTTPS": False,
    }


def test_every_pod_drops_managed_resources_so_pods_with_claims_reach_the_extender(
    render: Render,
) -> None:
    (default,) = chart_config(render)["extenders"]
    assert default["managedResources"] == [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}]
    (every,) = chart_config(render, set_values=["scheduler.extender.everyPod=true"])["extenders"]
    assert "managedResources" not in every
    # The extender still accounts the first managed resource as its GPUs.
    manifests = render(set_values=["scheduler.extender.everyPod=true"])
    pod = component(manifests, "Deployment", "scheduler")["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "extender"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SCHEDULER_EXTENDER_GPU_RESOURCE"] == "nvidia.com/gpu"


def write_kubeconfig(path: Path) -> Path:
    """A kubeconfig pointing nowhere: validation never contacts the API server."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def load_with_kube_scheduler(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """kube-scheduler --write-config-to: loads, defaults and validates the configuration, builds
    the scheduler (profiles, the extender's HTTP client), writes the result, exits."""
    binary = tool("kubernetes", "kube-scheduler")
    config = {**config, "clientConnection": {"kubeconfig": str(write_kubeconfig(tmp_path / "kc"))}}
    source = tmp_path / "scheduler-config.yaml"
    source.write_text(yaml.safe_dump(config))
    written = tmp_path / "loaded.yaml"
    result = subprocess.run(
        [str(binary), f"--config={source}", f"--write-config-to={written}", "--secure-port=0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded: dict[str, Any] = yaml.safe_load(written.read_text())
    return loaded


def test_kube_scheduler_loads_the_default_config(render: Render, tmp_path: Path) -> None:
    loaded = load_with_kube_scheduler(chart_config(render), tmp_path)
    (extender,) = loaded["extenders"]
    assert extender["urlPrefix"] == "http://127.0.0.1:8888/scheduler"
    # kube-scheduler writes false booleans out by omitting them.
    assert extender.get("enableHTTPS", False) is False
    assert extender.get("ignorable", False) is False
    assert extender["bindVerb"] == "bind"
    assert extender["preemptVerb"] == "preempt"
    assert extender["nodeCacheCapable"] is True
    assert [p["schedulerName"] for p in loaded["profiles"]] == ["gpu-scheduler"]
    assert loaded["leaderElection"]["resourceName"] == "scheduler-extender-scheduler"


def test_kube_scheduler_refuses_a_broken_config(render: Render, tmp_path: Path) -> None:
    """The check can fail: a zero weight is rejected by kube-scheduler's own validation."""
    config = chart_config(render)
    config["extenders"][0]["weight"] = 0
    with pytest.raises(AssertionError, match="positive weight"):
        load_with_kube_scheduler(config, tmp_path)
