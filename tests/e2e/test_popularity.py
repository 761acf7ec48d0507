"""Popularity from a real Prometheus steers real placements: hot replicas apart, cold ones packed.

A Prometheus on loopback holds two days of synthetic traffic for eight agents
(Zipf(1.1) popularity: agent-0 is the hottest, agent-5..7 the coldest) and
keeps scraping the live exporter. The extender is restarted with
``SCHEDULER_EXTENDER_PROMETHEUS__URL`` pointing at it and reads its forecast
through real PromQL. Four empty 8-GPU nodes; pods are created one at a time
so every decision sees the previous ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.prometheus import (
    AgentTraffic,
    PrometheusMissingError,
    TrafficStack,
    start_traffic_stack,
    zipf_rates,
)
from tests.e2e.helpers import NodePool, bound, list_pods, wait_for

HOT = "agent-0"
COLD = ("agent-5", "agent-6", "agent-7")


@pytest.fixture
def traffic_stack(tmp_path: Path) -> Iterator[TrafficStack]:
    try:
        stack = start_traffic_stack(
            tmp_path, AgentTraffic(zipf_rates(8, 40.0)), history=2 * 86400.0 + 900.0
        )
    except PrometheusMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield stack
    stack.stop()


def forecast_check(cluster: LocalCluster) -> dict[str, Any] | None:
    """The extender's forecast readiness details once it has fitted every agent."""
    checks = httpx.get(cluster.extender_endpoint.readyz_url, timeout=5.0).json()["checks"]
    details: dict[str, Any] | None = checks.get("forecast")
    if details and details["forecast_age_seconds"] is not None and details["agents"] == 8:
        return details
    return None


def place(api: client.ApiClient, pool: NodePool, namespace: str, name: str, agent: str) -> str:
    workload.create_pods(api, [pool.pod(name, namespace=namespace, agent=agent, gpus=1)])

    def node_of() -> str | None:
        for pod in bound(list_pods(api, namespace)):
            if pod["metadata"]["name"] == name:
                node: str = pod["spec"]["nodeName"]
                return node
        return None

    return wait_for(f"{name} bound", node_of, timeout=60)


def test_hot_replicas_spread_and_cold_ones_pack(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    traffic_stack: TrafficStack,
) -> None:
    cluster = reconfigurable_cluster
    cluster.start_extender(
        env={
            **cluster.options.extender_env,
            "SCHEDULER_EXTENDER_PROMETHEUS__URL": traffic_stack.url,
        },
        args=cluster.options.extender_args,
    )
    details = wait_for("the extender's first forecast", lambda: forecast_check(cluster), timeout=60)
    assert details["up"] is True
    node_pool.add(4, gpus=8)

    hot = [place(api, node_pool, namespace, f"hot-{i}", HOT) for i in range(3)]
    cold = [place(api, node_pool, namespace, f"cold-{i}", agent) for i, agent in enumerate(COLD)]

    assert len(set(hot)) == 3, hot  # every replica of the hottest agent on its own node
    assert len(set(cold)) == 1, cold  # the cold agents share one node...
    assert not set(cold) & set(hot), (hot, cold)  # ...the one the hot agent does not load
