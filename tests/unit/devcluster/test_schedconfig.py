"""deploy/scheduler-config.yaml and what a local run makes of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler_extender.config import Settings
from scheduler_extender.devcluster import schedconfig
from scheduler_extender.devcluster.paths import scheduler_config_path

KUBECONFIG = Path("/run/kubeconfig")
LOCAL = "http://127.0.0.1:40123"


@pytest.fixture
def base() -> dict[str, Any]:
    return schedconfig.load_base()


def test_the_deploy_file_sets_every_extender_field_explicitly(base: dict[str, Any]) -> None:
    assert base["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert base["kind"] == "KubeSchedulerConfiguration"
    [extender] = base["extenders"]
    assert extender["filterVerb"] == "filter"
    assert extender["prioritizeVerb"] == "prioritize"
    assert extender["bindVerb"] == "bind"
    assert extender["preemptVerb"] == "preempt"
    assert isinstance(extender["weight"], int)
    assert extender["weight"] > 0
    assert extender["nodeCacheCapable"] is True
    assert extender["managedResources"] == [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}]
    # A binder must not be ignorable: kube-scheduler would bind past its refusals.
    assert extender["ignorable"] is False
    # The extender beside the scheduler, on loopback (the chart's sidecar; a local run's port).
    assert extender["urlPrefix"].startswith("http://127.0.0.1:")
    assert extender["enableHTTPS"] is False
    assert extender["httpTimeout"].endswith("s")


def test_the_deploy_file_matches_the_extender_defaults(base: dict[str, Any]) -> None:
    """Profile name and URL path are what `scheduler-extender serve` uses by default."""
    defaults = Settings.model_fields
    assert schedconfig.scheduler_name(base) == defaults["scheduler_name"].default
    assert schedconfig.extender_path(base) == defaults["url_prefix"].default
    assert base["extenders"][0]["managedResources"][0]["name"] == defaults["gpu_resource"].default


def test_a_local_run_changes_only_address_kubeconfig_and_leader_election(
    base: dict[str, Any],
) -> None:
    local = schedconfig.render_local(base, kubeconfig=KUBECONFIG, extender_url=LOCAL)
    assert local["clientConnection"]["kubeconfig"] == str(KUBECONFIG)
    assert local["leaderElection"] == {"leaderElect": False}
    assert local["extenders"][0]["urlPrefix"] == f"{LOCAL}/scheduler"
    rest = {
        k: v
        for k, v in local.items()
        if k not in ("clientConnection", "leaderElection", "extenders")
    }
    assert rest == {k: v for k, v in base.items() if k not in ("leaderElection", "extenders")}
    local_extender = {k: v for k, v in local["extenders"][0].items() if k != "urlPrefix"}
    assert local_extender == {k: v for k, v in base["extenders"][0].items() if k != "urlPrefix"}


def test_variants_for_tests(base: dict[str, Any]) -> None:
    control = schedconfig.render_local(base, kubeconfig=KUBECONFIG, extender_url=None)
    assert "extenders" not in control
    assert control["profiles"] == base["profiles"]

    every_pod = schedconfig.render_local(
        base, kubeconfig=KUBECONFIG, extender_url=LOCAL, every_pod=True
    )
    assert "managedResources" not in every_pod["extenders"][0]
    assert "managedResources" in base["extenders"][0]

    for ignorable in (True, False):
        variant = schedconfig.render_local(
            base, kubeconfig=KUBECONFIG, extender_url=LOCAL, ignorable=ignorable
        )
        assert variant["extenders"][0]["ignorable"] is ignorable

    tuned = schedconfig.render_local(
        base,
        kubeconfig=KUBECONFIG,
        extender_url=LOCAL,
        overrides={"clientConnection": {"qps": 500}, "percentageOfNodesToScore": 100},
    )
    assert tuned["clientConnection"] == {"kubeconfig": str(KUBECONFIG), "qps": 500}
    assert tuned["percentageOfNodesToScore"] == 100
    assert base == schedconfig.load_base()  # rendering never mutates the base


def test_load_base_rejects_what_the_local_run_cannot_use(tmp_path: Path) -> None:
    config = yaml.safe_load(scheduler_config_path().read_text())
    config["extenders"].append(dict(config["extenders"][0]))
    broken = tmp_path / "two-extenders.yaml"
    broken.write_text(yaml.safe_dump(config))
    with pytest.raises(schedconfig.SchedulerConfigError, match="exactly one extender"):
        schedconfig.load_base(broken)


def test_with_extender_address_keeps_the_path() -> None:
    assert (
        schedconfig.with_extender_address("https://svc.ns.svc:8888/a/b", "http://127.0.0.1:1")
        == "http://127.0.0.1:1/a/b"
    )
