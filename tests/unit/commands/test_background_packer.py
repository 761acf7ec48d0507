"""``serve``'s background packer is built only when enabled, with its metrics in the given registry."""

from __future__ import annotations

from kubernetes import client
from prometheus_client import CollectorRegistry

from scheduler_extender.adapters.kube.leader import Unelected
from scheduler_extender.commands.background_packer import build_background_packer
from scheduler_extender.config import PackerSettings, Settings
from scheduler_extender.domain.shared import SharedCluster


def families(registry: CollectorRegistry) -> set[str]:
    return {family.name for family in registry.collect()}


def test_an_enabled_packer_exports_its_metrics_into_the_service_registry() -> None:
    registry = CollectorRegistry()
    settings = Settings(packer=PackerSettings(enabled=True, leader_elect=False))
    packer = build_background_packer(
        settings, client.ApiClient(), SharedCluster(assume_timeout=30.0), registry
    )
    assert packer is not None
    assert isinstance(packer, Unelected)  # leader_elect=False: no Lease
    assert {
        "scheduler_extender_packer_runs",
        "scheduler_extender_packer_solve_duration_seconds",
        "scheduler_extender_packer_pods_rescued",
        "scheduler_extender_packer_evictions",
    } <= families(registry)
    assert (
        registry.get_sample_value("scheduler_extender_packer_runs_total", {"outcome": "error"}) == 0
    )


def test_a_disabled_packer_is_not_built_and_exports_nothing() -> None:
    registry = CollectorRegistry()
    packer = build_background_packer(
        Settings(), client.ApiClient(), SharedCluster(assume_timeout=30.0), registry
    )
    assert packer is None
    assert not {name for name in families(registry) if "packer" in name}
