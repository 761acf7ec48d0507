"""Faults on the real control plane: the API server restarts, the extender dies.

Staleness bound (documented in the README): when a watch breaks, the extender
relists instead of resuming, and refuses to filter or bind once the break is
older than ``max_cache_staleness_seconds`` (30 s by default); a connection
that hangs silently is noticed by a 90 s read timeout.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import NodePool, bound, events_for, list_pods, overallocated, wait_for
from tests.support.figures import record

PODS = 40


def watch_restarts(metrics_url: str) -> int:
    text = httpx.get(metrics_url, timeout=5.0).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "scheduler_extender_watch_restarts"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["cause"] != "timeout"
    )


def never_scheduled_twice(api: client.ApiClient, namespace: str, names: list[str]) -> None:
    """No pod has two Scheduled events (one may be lost while the API server is down)."""
    counts = Counter(
        name
        for name in names
        for event in events_for(api, namespace, name)
        if event["reason"] == "Scheduled"
    )
    assert all(counts[name] <= 1 for name in names), {n: counts[n] for n in names}


def binds(metrics_url: str, outcome: str) -> int:
    text = httpx.get(metrics_url, timeout=5.0).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "scheduler_extender_binds"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["outcome"] == outcome
    )


def test_apiserver_restart_while_scheduling(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    node_pool.add(6, gpus=8)
    names = [f"gpu-{i:02d}" for i in range(PODS)]
    metrics_url = cluster.extender_endpoint.metrics_url
    restarts_before = watch_restarts(metrics_url)
    bound_before = binds(metrics_url, "bound")
    first, second = names[: PODS // 2], names[PODS // 2 :]
    workload.create_pods(api, [node_pool.pod(n, namespace=namespace, agent="a") for n in first])
    started = time.monotonic()
    cluster.restart_apiserver(downtime=2.0)
    record("faults", "kube-apiserver restart took (s)", round(time.monotonic() - started, 1))
    api = cluster.api_client()
    workload.create_pods(api, [node_pool.pod(n, namespace=namespace, agent="a") for n in second])

    wait_for(
        f"all {PODS} pods bound after the restart",
        lambda: len(bound(list_pods(api, namespace))) == PODS,
        timeout=180,
        interval=1.0,
    )
    assert overallocated(api) == {}
    never_scheduled_twice(api, namespace, names)
    # Every pod was bound by the extender at most once (a retry of a bind whose
    # reply was lost in the restart counts as "already_bound", not "bound").
    assert binds(metrics_url, "bound") - bound_before <= PODS
    # The extender's watches broke and recovered (relist), rather than going silent.
    assert watch_restarts(metrics_url) > restarts_before
    # A relist may still be in its backoff when the last pod binds: wait for it.
    wait_for(
        "the cache relisted (stale_seconds back to 0)",
        lambda: cache_staleness(cluster) == 0.0,
        timeout=60,
        interval=0.5,
    )


def cache_staleness(cluster: LocalCluster) -> float:
    ready = httpx.get(cluster.extender_endpoint.readyz_url, timeout=5.0).json()
    return float(ready["checks"]["cache"]["stale_seconds"])


def test_extender_killed_mid_stream_binds_nothing_until_it_is_back(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(6, gpus=8)
    cluster.start_scheduler(extender=True)  # not ignorable, as deploy/scheduler-config.yaml
    names = [f"gpu-{i:02d}" for i in range(PODS)]
    creator = threading.Thread(
        target=workload.create_pods,
        args=(api, [node_pool.pod(n, namespace=namespace, agent="b") for n in names]),
    )
    creator.start()
    # Kill it while kube-scheduler is calling it, then bring it back.
    wait_for("some pods bound", lambda: len(bound(list_pods(api, namespace))) >= 3, timeout=60)
    cluster.stop_extender()
    time.sleep(1.0)  # a bind the killed process had already sent may still land
    while_down = len(bound(list_pods(api, namespace)))
    time.sleep(4.0)
    # kube-scheduler keeps trying; nothing is bound past the extender.
    assert len(bound(list_pods(api, namespace))) == while_down
    restarted = time.monotonic()
    cluster.start_extender()  # returns once /readyz is 200: the cache has synced
    record("faults", "extender restart to ready (s)", round(time.monotonic() - restarted, 1))
    ready = httpx.get(cluster.extender_endpoint.readyz_url, timeout=5.0).json()
    assert ready["checks"]["cache"]["synced"] is True
    assert ready["checks"]["cache"]["nodes"] >= 6
    creator.join(timeout=60)

    wait_for(
        f"all {PODS} pods bound",
        lambda: len(bound(list_pods(api, namespace))) == PODS,
        timeout=180,
        interval=1.0,
    )
    assert overallocated(api) == {}
    never_scheduled_twice(api, namespace, names)
