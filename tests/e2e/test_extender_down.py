"""The extender's binds and refusals cannot be gone around, as the chart deploys it.

deploy/scheduler-config.yaml (the chart renders the same entry) makes the
extender a binder that is not ``ignorable``: kube-scheduler started from it
calls the extender on loopback, as the chart's kube-scheduler pods call the
extender container beside them.
"""

from __future__ import annotations

import time

import httpx
from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.schedconfig import load_base
from tests.e2e.helpers import NodePool, bound, events_for, list_pods, wait_for
from tests.support.figures import record

PODS = 3


def failed_scheduling(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, str]]:
    return [e for e in events_for(api, namespace, name) if e["reason"] == "FailedScheduling"]


def test_the_shipped_configuration_binds_through_the_extender_and_is_not_ignorable() -> None:
    extender = load_base()["extenders"][0]
    assert extender["bindVerb"] == "bind"
    assert extender["ignorable"] is False
    assert extender["urlPrefix"].startswith("http://127.0.0.1:")


def test_extender_down_pods_wait_and_are_bound_soon_after_it_is_back(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(2, gpus=4)
    cluster.start_scheduler(extender=True)  # as deploy/scheduler-config.yaml says
    cluster.stop_extender()

    names = [f"gpu-{i}" for i in range(PODS)]
    workload.create_pods(api, [node_pool.pod(n, namespace=namespace) for n in names])

    for name in names:
        failures = wait_for(
            f"a FailedScheduling event for {name}",
            lambda name=name: failed_scheduling(api, namespace, name),
            timeout=60,
        )
        # The event names the extender that could not be reached.
        assert str(cluster.extender_endpoint.port) in failures[0]["message"], failures[0]["message"]
    assert bound(list_pods(api, namespace)) == []

    restarted = time.monotonic()
    cluster.start_extender()
    # kube-scheduler retries after its backoff (podMaxBackoffSeconds, 10 s by default).
    wait_for(
        f"{PODS} pods bound once the extender is back",
        lambda: len(bound(list_pods(api, namespace))) == PODS,
        timeout=60,
        interval=0.5,
    )
    record("extender down", "extender restart to every waiting pod bound (s)",
           round(time.monotonic() - restarted, 1))  # fmt: skip


def test_a_refusal_is_not_overridden_and_the_pod_schedules_once_its_reason_is_gone(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(2, gpus=4)
    cluster.start_extender(env={"SCHEDULER_EXTENDER_MAX_AGENT_REPLICAS_PER_NODE": "1"})
    cluster.start_scheduler(extender=True)
    first = [node_pool.pod(f"gpu-{i}", namespace=namespace, agent="solo") for i in range(2)]
    workload.create_pods(api, first)
    wait_for("one replica per node", lambda: len(bound(list_pods(api, namespace))) == 2)

    workload.create_pods(api, [node_pool.pod("gpu-extra", namespace=namespace, agent="solo")])
    failures = wait_for(
        "the third replica refused", lambda: failed_scheduling(api, namespace, "gpu-extra")
    )
    assert "replicas of agent 'solo'" in failures[0]["message"], failures[0]["message"]
    time.sleep(5.0)  # kube-scheduler retries; nothing binds it past the extender
    pods = {p["metadata"]["name"]: p for p in list_pods(api, namespace)}
    assert not pods["gpu-extra"]["spec"].get("nodeName")

    freed = pods["gpu-0"]["spec"]["nodeName"]
    client.CoreV1Api(api).delete_namespaced_pod("gpu-0", namespace, grace_period_seconds=0)
    wait_for(
        "the third replica bound where the limit now allows it",
        lambda: (
            next(
                (
                    p["spec"].get("nodeName")
                    for p in list_pods(api, namespace)
                    if p["metadata"]["name"] == "gpu-extra"
                ),
                None,
            )
            == freed
        ),
        timeout=120,
        interval=0.5,
    )


def test_a_bind_for_another_schedulers_pod_is_refused(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    node_pool.add(1, gpus=4)
    foreign = node_pool.pod("foreign", namespace=namespace)
    foreign["spec"]["schedulerName"] = "some-other-scheduler"  # nobody schedules it
    workload.create_pods(api, [foreign])
    pod = wait_for(
        "the pod in the API server",
        lambda: next(
            (p for p in list_pods(api, namespace) if p["metadata"]["name"] == "foreign"), None
        ),
    )
    reply = httpx.post(
        f"{cluster.extender_endpoint.url}/scheduler/bind",
        json={
            "PodName": "foreign",
            "PodNamespace": namespace,
            "PodUID": pod["metadata"]["uid"],
            "Node": node_pool.node_names[0],
        },
        timeout=10.0,
    )
    assert "belongs to scheduler 'some-other-scheduler'" in reply.json()["Error"]
    time.sleep(1.0)
    assert bound(list_pods(api, namespace)) == []
