"""Soak: steady scheduling with pod churn on 500 fake nodes; nothing may grow.

Runs for ``SOAK_SECONDS`` (``make reliability`` sets 600). It is marked
``soak`` and left out of ``make test``, which runs the short fault tests.
"""

from __future__ import annotations

import os
import time

import httpx
import numpy as np
import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import NodePool, bound, list_pods, overallocated, wait_for
from tests.support.figures import record

NODES = 500
LIVE_PODS = 200  # pods kept alive at any time
BATCH = 20  # created and deleted per tick
TICK = 2.0


def sample(metrics_url: str) -> dict[str, float]:
    wanted = {
        "process_resident_memory_bytes",
        "process_open_fds",
        "scheduler_extender_cache_objects",
        "scheduler_extender_assumed_pods",
    }
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text):
        for s in family.samples:
            if s.name in wanted:
                key = s.name + (f"{{{s.labels['kind']}}}" if "kind" in s.labels else "")
                values[key] = s.value
    return values


def slope_per_minute(times: list[float], values: list[float]) -> float:
    """Least-squares slope over the second half of the run (after warm-up)."""
    half = len(times) // 2
    fit = np.polyfit(np.array(times[half:]) / 60.0, np.array(values[half:]), 1)
    return float(fit[0])


@pytest.mark.soak
@pytest.mark.timeout(float(os.environ.get("SOAK_SECONDS", "600")) + 900)
def test_soak_memory_and_cache_stay_flat(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    duration = float(os.environ.get("SOAK_SECONDS", "600"))
    node_pool.add(NODES, gpus="mix")
    core = client.CoreV1Api(api)
    created = 0
    live: list[str] = []
    times: list[float] = []
    samples: list[dict[str, float]] = []
    start = time.monotonic()
    while time.monotonic() - start < duration:
        tick = time.monotonic()
        names = [f"soak-{created + i}" for i in range(BATCH)]
        created += BATCH
        workload.create_pods(api, [node_pool.pod(n, namespace=namespace, agent=f"a{i % 9}")
                                   for i, n in enumerate(names)])  # fmt: skip
        live.extend(names)
        while len(live) > LIVE_PODS:
            core.delete_namespaced_pod(
                live.pop(0), namespace, grace_period_seconds=0, _preload_content=False
            )
        times.append(tick - start)
        samples.append(sample(cluster.extender_endpoint.metrics_url))
        time.sleep(max(0.0, TICK - (time.monotonic() - tick)))

    wait_for("the live pods to be bound", lambda: len(bound(list_pods(api, namespace))) >= LIVE_PODS,
             timeout=120, interval=1.0)  # fmt: skip
    assert overallocated(api) == {}
    rss = [s["process_resident_memory_bytes"] / 2**20 for s in samples]
    fds = [s["process_open_fds"] for s in samples]
    pods = [s["scheduler_extender_cache_objects{pod}"] for s in samples]
    rss_slope = slope_per_minute(times, rss)
    pod_slope = slope_per_minute(times, pods)
    fd_slope = slope_per_minute(times, fds)
    record("soak", "duration (s)", round(duration))
    record("soak", "pods created", created)
    record("soak", "RSS first/last (MiB)", f"{rss[0]:.0f}/{rss[-1]:.0f}")
    record("soak", "RSS slope, 2nd half (MiB/min)", round(rss_slope, 2))
    record("soak", "cached pods slope (pods/min)", round(pod_slope, 2))
    record("soak", "open fds first/last", f"{fds[0]:.0f}/{fds[-1]:.0f}")
    # Flat: under 2 MiB/min of memory growth, no drift of cached objects, no leaked sockets.
    assert rss_slope < 2.0, rss
    assert abs(pod_slope) < LIVE_PODS * 0.05, pods
    assert fd_slope < 1.0, fds
