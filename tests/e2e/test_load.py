"""1 000 concurrent filter / prioritize / bind calls against one extender process.

The pods use a scheduler name kube-scheduler does not serve, so it leaves them
alone and every bind comes from this test; the binds race for the GPUs of a
small pool. The extender is restarted to serve that name (it binds pods of
its own profiles only), without the wait for the previous pod's bind, which
models kube-scheduler's serial cycle and not this concurrent blast. Checked: no 5xx, no GPU over-allocation (in the API server), no
pod bound twice; the p99 latency per verb is reported.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import NodePool, bound, list_pods, overallocated, wait_for
from tests.support.figures import record

REQUESTS = 1000
PODS = 200
NODES = 5


BLAST_SCHEDULER = "nobody-schedules-these"


def test_concurrent_calls_never_overallocate_or_fail(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
) -> None:
    cluster = reconfigurable_cluster
    cluster.start_extender(
        env={
            "SCHEDULER_EXTENDER_SCHEDULER_NAME": BLAST_SCHEDULER,
            "SCHEDULER_EXTENDER_IN_FLIGHT_WAIT_SECONDS": "0",
        }
    )
    node_pool.add(NODES, gpus=8)
    pods = [
        workload.gpu_pod(
            f"load-{i:03d}",
            namespace=namespace,
            scheduler_name=BLAST_SCHEDULER,
            agent=f"agent-{i % 7}",
            **node_pool.placement,
        )
        for i in range(PODS)
    ]
    workload.create_pods(api, pods)
    listed = wait_for(
        "the pods to exist", lambda: (p := list_pods(api, namespace)) and len(p) == PODS and p
    )
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in listed}
    rng = random.Random(5)
    calls: list[tuple[str, dict[str, Any]]] = []
    for i in range(REQUESTS):
        pod = rng.choice(pods)
        name = pod["metadata"]["name"]
        verb = ("filter", "prioritize", "bind")[i % 3]
        if verb == "bind":
            body: dict[str, Any] = {
                "PodName": name,
                "PodNamespace": namespace,
                "PodUID": uids[name],
                "Node": rng.choice(node_pool.node_names),
            }
        else:
            full = {**pod, "metadata": {**pod["metadata"], "uid": uids[name]}}
            body = {"Pod": full, "NodeNames": node_pool.node_names}
        calls.append((verb, body))

    async def blast() -> list[tuple[str, int, float, dict[str, Any] | list[Any]]]:
        limits = httpx.Limits(max_connections=REQUESTS)
        async with httpx.AsyncClient(
            base_url=cluster.extender_endpoint.url, limits=limits, timeout=120
        ) as http:

            async def one(verb: str, body: dict[str, Any]) -> tuple[str, int, float, Any]:
                start = time.perf_counter()
                reply = await http.post(f"/scheduler/{verb}", json=body)
                return verb, reply.status_code, time.perf_counter() - start, reply.json()

            return await asyncio.gather(*(one(v, b) for v, b in calls))

    results = asyncio.run(blast())
    statuses = [status for _, status, _, _ in results]
    assert all(s == 200 for s in statuses), sorted(set(statuses))
    successful_binds = [b for (v, _, _, reply), (_, b) in zip(results, calls, strict=True)
                        if v == "bind" and reply == {"Error": ""}]  # fmt: skip
    assert successful_binds, "no bind succeeded"

    def settled() -> list[Any] | None:
        placed = bound(list_pods(api, namespace))
        return placed if len(placed) == len({b["PodName"] for b in successful_binds}) else None

    placed = wait_for("the API server to show every successful bind", settled, timeout=60)
    assert overallocated(api) == {}
    assert len(placed) <= NODES * 8
    # A pod bound twice would show as a second successful bind to another node.
    nodes_per_pod: dict[str, set[str]] = {}
    for b in successful_binds:
        nodes_per_pod.setdefault(b["PodName"], set()).add(b["Node"])
    assert all(len(n) == 1 for n in nodes_per_pod.values()), nodes_per_pod
    for p in placed:
        assert nodes_per_pod[p["metadata"]["name"]] == {p["spec"]["nodeName"]}
    for verb in ("filter", "prioritize", "bind"):
        latencies = sorted(t for v, _, t, _ in results if v == verb)
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        record("load: 1000 concurrent calls", f"{verb} p99 (s)", round(p99, 4))
    record("load: 1000 concurrent calls", "5xx replies", sum(1 for s in statuses if s >= 500))
    record("load: 1000 concurrent calls", "GPU over-allocated nodes", len(overallocated(api)))
