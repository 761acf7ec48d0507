"""300 replicas of one agent at once, each binding a volume in PreBind: one per node.

Each pod claims a WaitForFirstConsumer volume, pre-created as local
PersistentVolumes with node affinity (two per node, so volume binding alone
would allow two pods per node). kube-scheduler binds such claims in PreBind
and polls every second until the PV controller confirms, so the bind of pod N
reaches the extender after the filter of pod N+1 has been asked for: the
window in which a decision could miss pod N. With
``max_agent_replicas_per_node: 1`` the run must end with no node holding two
replicas and no bind refused on the way (service/inflight.py).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.nodes import HOSTNAME_LABEL
from tests.e2e.helpers import NodePool, bound, list_pods, wait_for
from tests.support.figures import record

PODS = 300
VOLUMES_PER_NODE = 2


def samples(metrics_url: str, family_name: str) -> dict[tuple[str, ...], float]:
    text = httpx.get(metrics_url, timeout=5.0).text
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            for s in family.samples:
                found[(s.name, *sorted(s.labels.values()))] = s.value
    return found


def create_volumes(api: client.ApiClient, namespace: str, nodes: list[str]) -> str:
    storage = client.StorageV1Api(api)
    core = client.CoreV1Api(api)
    klass = f"local-{namespace}"
    storage.create_storage_class(
        {
            "metadata": {"name": klass},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
    )

    def volume(args: tuple[str, int]) -> None:
        node, i = args
        core.create_persistent_volume(
            {
                "metadata": {"name": f"{namespace}-{node}-{i}", "labels": {"test": namespace}},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": klass,
                    "local": {"path": f"/mnt/{i}"},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}
                                    ]
                                }
                            ]
                        }
                    },
                },
            }
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(volume, [(n, i) for n in nodes for i in range(VOLUMES_PER_NODE)]))
    return klass


def delete_volumes(api: client.ApiClient, namespace: str, klass: str) -> None:
    core = client.CoreV1Api(api)
    core.delete_collection_persistent_volume(label_selector=f"test={namespace}")
    client.StorageV1Api(api).delete_storage_class(klass)


def claim_and_pod(pool: NodePool, namespace: str, klass: str, i: int) -> tuple[Any, Any]:
    name = f"burst-{i:03d}"
    claim = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": klass,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    # Tiny cpu/memory requests: kube-scheduler's own scores then barely differ between
    # nodes, so only the extender keeps two replicas of the agent apart.
    pod = pool.pod(name, namespace=namespace, agent="burst", cpu="10m", memory="16Mi")
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": name}}]
    return claim, pod


def test_a_burst_with_slow_prebind_lands_one_replica_per_node_without_refused_binds(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> None:
    cluster = reconfigurable_cluster
    node_pool.add(PODS, gpus=8)
    cluster.start_extender(env={"SCHEDULER_EXTENDER_MAX_AGENT_REPLICAS_PER_NODE": "1"})
    cluster.start_scheduler(extender=True)
    klass = create_volumes(api, namespace, node_pool.node_names)
    try:
        core = client.CoreV1Api(api)
        made = [claim_and_pod(node_pool, namespace, klass, i) for i in range(PODS)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: core.create_namespaced_persistent_volume_claim(
                namespace, c, _preload_content=False), [c for c, _ in made]))  # fmt: skip
        start = time.monotonic()
        workload.create_pods(api, [p for _, p in made])
        wait_for(
            f"{PODS} pods bound",
            lambda: len(bound(list_pods(api, namespace))) == PODS,
            timeout=600,
            interval=2.0,
        )
        elapsed = time.monotonic() - start
        per_node = Counter(p["spec"]["nodeName"] for p in bound(list_pods(api, namespace)))
        doubled = {n: c for n, c in per_node.items() if c > 1}
        metrics_url = cluster.extender_endpoint.metrics_url
        binds = {k[1]: v for k, v in samples(metrics_url, "scheduler_extender_binds").items()
                 if k[0].endswith("_total")}  # fmt: skip
        waits = {k[1]: v for k, v in samples(metrics_url, "scheduler_extender_in_flight_wait_seconds").items()
                 if k[0].endswith("_count")}  # fmt: skip
        record("burst with PreBind volumes", "pods bound per second", round(PODS / elapsed, 1))
        record("burst with PreBind volumes", "nodes holding two replicas", len(doubled))
        record("burst with PreBind volumes", "binds refused", sum(
            v for k, v in binds.items() if k not in ("bound", "already_bound")))  # fmt: skip
        record("burst with PreBind volumes", "filters settled by (count)",
               ", ".join(f"{k} {int(v)}" for k, v in sorted(waits.items())))  # fmt: skip
        assert doubled == {}
        assert {k for k, v in binds.items() if v} <= {"bound", "already_bound"}, binds
    finally:
        for p in list_pods(api, namespace):
            core.delete_namespaced_pod(p["metadata"]["name"], namespace, grace_period_seconds=0)
        core.delete_collection_namespaced_persistent_volume_claim(namespace)
        delete_volumes(api, namespace, klass)
