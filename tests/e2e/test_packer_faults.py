"""Faults of the background packer on the real control plane.

The scenario of both tests: four 8-GPU nodes each run the single 4-GPU pod of
a low-priority Deployment (four Deployments), and two 8-GPU high-priority pods
(a PriorityClass that never preempts) are Pending. Only the packer can place
them, and its plan needs two moves, so two evictions. Evictions are slowed to
one every 20 s, so that the executor can be killed (SIGKILL) between the first
and the second.

1. One extender, killed after the first eviction, then restarted. While it is
   down nothing is bound past it (the extender is not ``ignorable``): the
   evicted pod's replacement waits, and no node is over-allocated. The
   restarted process leads once the dead one's Lease expires and finishes the
   job, and every Deployment gets its pod back and bound.
2. Two extender replicas on one packer Lease. The leader runs beside the
   control plane's extender, which is the standby and the one kube-scheduler
   calls: reservations are not shared between replicas (README, "Background
   packer"), so the survivor must be the replica whose filter kube-scheduler
   asks. The leader is killed after its first eviction; the standby must take
   the Lease within ``TAKEOVER_BOUND`` and finish the job.

What is checked, and how:

- Evictions: a watch on the namespace's pods records every pod that begins to
  go (``deletionTimestamp`` set, or deleted); nothing but the packer deletes
  pods there during a test. The packer's ``PackingPlan`` Events (one per
  action, posted before anything is reserved or evicted, ``reportingInstance``
  = the packer's identity) say what each process planned to evict; its
  ``scheduler_extender_packer_evictions_total`` says how many Eviction calls it
  made (scraped from the killed process just before the kill). No plan
  executed twice: the killed process evicted exactly one pod, which it had
  announced; the successor never planned for a pod already evicted; every
  later eviction was announced by the successor, which made exactly one call
  per pod it announced and none on a pod already gone.
- Reservations live in the memory of the process that made them. The probe is
  the filter itself: a copy of every live pod of the namespace, unbound and
  without GPUs (so that a full node does not fail for want of GPUs first), is
  sent to ``/filter``, and nodes closed "by a packing plan" are reservations
  for or against it. The probe sees them while the first plan runs, sees none
  on the restarted process before that process has announced a plan of its own
  (it cannot plan before the dead process's Lease has expired), and none once
  the successor's pods have all arrived.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from scheduler_extender.devcluster import schedconfig, workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.processes import ManagedProcess, free_port, wait_until
from tests.e2e.helpers import NodePool, bound, gpu_deployment, list_pods, overallocated, wait_for
from tests.support.figures import record

LOWS = ("low-a", "low-b", "low-c", "low-d")
TRAINERS = ("trainer-0", "trainer-1")
EVICTIONS_PER_MINUTE = 3  # one eviction every 20 s: the window to kill the executor in
# The packer's Lease timing: LeaseSettings' defaults (config.py).
LEASE_SECONDS = 15
RETRY_SECONDS = 2
# A standby notices the last renewal up to one retry period after it was made, then
# waits the lease duration and tries again every retry period; a few seconds on top
# for a busy 2-core machine.
TAKEOVER_BOUND = LEASE_SECONDS + 2 * RETRY_SECONDS + 5
new_watch: Any = watch.Watch  # the client is not annotated


def packer_env(cluster: LocalCluster, lease: tuple[str, str], identity: str) -> dict[str, str]:
    namespace, name = lease
    return {
        **cluster.options.extender_env,
        "SCHEDULER_EXTENDER_SCHEDULER_NAME": cluster.scheduler_name,
        "SCHEDULER_EXTENDER_PACKER__ENABLED": "true",
        "SCHEDULER_EXTENDER_PACKER__DRY_RUN": "false",
        "SCHEDULER_EXTENDER_PACKER__INTERVAL": "1s",
        "SCHEDULER_EXTENDER_PACKER__DEBOUNCE": "1s",
        "SCHEDULER_EXTENDER_PACKER__MIN_INTERVAL": "3s",
        # Room for a noisy machine: a plan that places one trainer only would need one eviction.
        "SCHEDULER_EXTENDER_PACKER__TIME_LIMIT": "5s",
        "SCHEDULER_EXTENDER_PACKER__EVICTIONS_PER_MINUTE": str(EVICTIONS_PER_MINUTE),
        "SCHEDULER_EXTENDER_PACKER__LEASE_NAMESPACE": namespace,
        "SCHEDULER_EXTENDER_PACKER__LEASE_NAME": name,
        "SCHEDULER_EXTENDER_PACKER__IDENTITY": identity,
    }


# -- the scenario -------------------------------------------------------------------
def trainer(name: str, namespace: str, pool: NodePool, priority: str) -> dict[str, Any]:
    pod = pool.pod(name, namespace=namespace, gpus=8)
    pod["spec"]["priorityClassName"] = priority
    return pod


def live(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    return [p for p in list_pods(api, namespace) if not p["metadata"].get("deletionTimestamp")]


def of_deployment(pods: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [p for p in pods if p["metadata"]["name"].startswith(f"{name}-")]


def cordon(api: client.ApiClient, node: str, on: bool) -> None:
    client.CoreV1Api(api).patch_node(node, {"spec": {"unschedulable": on}})


def fragment(api: client.ApiClient, namespace: str, pool: NodePool, low: str) -> None:
    """One low-priority Deployment pod on each node of the pool (cordoning the taken ones)."""
    apps = client.AppsV1Api(api)
    taken: list[str] = []
    for name in LOWS:
        body: Any = gpu_deployment(name, namespace, pool, low)
        apps.create_namespaced_deployment(namespace, body)

        def placed(name: str = name) -> str | None:
            pods = bound(of_deployment(live(api, namespace), name))
            return str(pods[0]["spec"]["nodeName"]) if pods else None

        taken.append(wait_for(f"the pod of {name} bound", placed, timeout=90))
        cordon(api, taken[-1], True)
    for node in taken:
        cordon(api, node, False)
    assert sorted(taken) == sorted(pool.node_names)


def settled(api: client.ApiClient, namespace: str) -> bool:
    """Every Deployment has its one pod bound, and so has every trainer."""
    pods = bound(live(api, namespace))
    names = {p["metadata"]["name"] for p in pods}
    return all(len(of_deployment(pods, d)) == 1 for d in LOWS) and names >= set(TRAINERS)


# -- what happened --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Going:
    name: str
    at: float  # time.monotonic() when the watch first saw the pod going


class PodWatch:
    """A watch on one namespace's pods: which pods began to go (evicted), and when."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._going: dict[str, Going] = {}
        self._version = ""
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)
        self.failure: BaseException | None = None

    def __enter__(self) -> Self:
        listing: Any = self._core.list_namespaced_pod(self._namespace)
        for pod in listing.items:
            self._see(pod, deleted=False)
        self._version = listing.metadata.resource_version
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def going(self, since: float = float("-inf"), until: float = float("inf")) -> dict[str, str]:
        """uid -> name of the pods that began to go in [since, until)."""
        if self.failure is not None:  # a blind watch proves nothing
            raise AssertionError(f"the pod watch failed: {self.failure!r}")
        with self._lock:
            return {u: g.name for u, g in self._going.items() if since <= g.at < until}

    def _run(self) -> None:
        stream = new_watch()
        try:
            while not self._stop.is_set():
                # Short server-side timeouts: the loop notices a stop within seconds.
                for event in stream.stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    resource_version=self._version,
                    timeout_seconds=5,
                ):
                    pod = event["object"]
                    self._version = pod.metadata.resource_version
                    self._see(pod, deleted=event["type"] == "DELETED")
                    if self._stop.is_set():
                        break
        except BaseException as exc:  # reported by going() and the test's last checks
            self.failure = exc

    def _see(self, pod: Any, *, deleted: bool) -> None:
        meta = pod.metadata
        if deleted or meta.deletion_timestamp is not None:
            with self._lock:
                self._going.setdefault(meta.uid, Going(meta.name, time.monotonic()))


@dataclass(frozen=True, slots=True)
class Announced:
    """A ``PackingPlan`` Event: one action of a plan, as the packer announced it."""

    instance: str
    uid: str
    name: str
    eviction: bool  # a move or an eviction (else a placement)


def announced(api: client.ApiClient, namespace: str) -> list[Announced]:
    response: Any = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="reason=PackingPlan", _preload_content=False
    )
    return [
        Announced(
            e.get("reportingInstance", ""),
            e["involvedObject"]["uid"],
            e["involvedObject"]["name"],
            e["message"].startswith("evict"),
        )
        for e in json.loads(response.data)["items"]
    ]


def evictions_planned(actions: Sequence[Announced], instance: str) -> dict[str, str]:
    return {a.uid: a.name for a in actions if a.instance == instance and a.eviction}


def eviction_calls(metrics_url: str) -> dict[str, int]:
    """scheduler_extender_packer_evictions_total of one process, by outcome."""
    text = httpx.get(metrics_url, timeout=10.0).text
    return {
        sample.labels["outcome"]: int(sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "scheduler_extender_packer_evictions"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def reserved(filter_url: str, pod: Mapping[str, Any], nodes: Sequence[str]) -> dict[str, str]:
    """Nodes the filter closes to a probe copy of ``pod`` because of a packing plan.

    The copy is unbound and asks for no GPUs: otherwise a full node would fail for
    want of GPUs first and hide the reservation. It keeps the UID and the owner,
    which is what reservations match on.
    """
    containers = [
        {**c, "resources": {k: _without_gpus(v) for k, v in c.get("resources", {}).items()}}
        for c in pod["spec"]["containers"]
    ]
    spec = {k: v for k, v in pod["spec"].items() if k != "nodeName"} | {"containers": containers}
    reply = httpx.post(
        filter_url, json={"Pod": {**pod, "spec": spec}, "NodeNames": list(nodes)}, timeout=10.0
    ).json()
    failed = {**reply["FailedNodes"], **reply["FailedAndUnresolvableNodes"]}
    return {node: why for node, why in failed.items() if "packing plan" in why}


def _without_gpus(amounts: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in amounts.items() if k != workload.GPU_RESOURCE}


def reservations_seen(
    api: client.ApiClient, namespace: str, filter_url: str, nodes: Sequence[str]
) -> dict[str, dict[str, str]]:
    """pod -> nodes closed to it by a packing plan, for every live pod of the namespace."""
    return {
        p["metadata"]["name"]: closed
        for p in live(api, namespace)
        if (closed := reserved(filter_url, p, nodes))
    }


def lease_holder(api: client.ApiClient, namespace: str, name: str) -> str | None:
    try:
        spec = client.CoordinationV1Api(api).read_namespaced_lease(name, namespace).spec
    except client.ApiException:
        return None
    return (spec.holder_identity if spec is not None else None) or None


def check_no_eviction_twice(
    actions: Sequence[Announced],
    watched: PodWatch,
    killed_at: float,
    killed: tuple[str, dict[str, int]],
    successor: tuple[str, dict[str, int]],
) -> None:
    """Each planned eviction happened once, by the replica that planned it (module docstring)."""
    (first, first_calls), (second, second_calls) = killed, successor
    before, after = watched.going(until=killed_at), watched.going(since=killed_at)
    first_plan, second_plan = evictions_planned(actions, first), evictions_planned(actions, second)
    # The killed replica's plan was interrupted half way: one of its evictions done.
    assert len(first_plan) >= 2, first_plan
    assert len(before) == 1, before
    assert before.keys() <= first_plan.keys(), (before, first_plan)
    assert first_calls.get("evicted") == 1, first_calls
    # The successor planned from the real state: nothing already evicted, ...
    assert not before.keys() & second_plan.keys(), (before, second_plan)
    # ... and every later eviction is one of its own, made once, none on a pod already gone.
    assert after == second_plan, (after, second_plan)
    assert second_calls.get("evicted") == len(second_plan), second_calls
    assert second_calls.get("gone") == 0, second_calls
    assert not any(a.instance not in (first, second) for a in actions), actions


def wait_settled(api: client.ApiClient, namespace: str) -> None:
    """The successor needs about a minute (the Lease, a solve, two evictions 20 s apart).

    Three minutes, not more: a packer that only wakes up on some unrelated change in
    the cluster would be rescued by kwok's node heartbeats, every 4 to 9 minutes.
    """
    wait_for(
        "every Deployment's pod and both trainers bound",
        lambda: settled(api, namespace),
        timeout=180,
        interval=1.0,
    )


# -- the tests ------------------------------------------------------------------------
def test_a_plan_interrupted_half_way_loses_no_pod_and_the_next_plan_starts_from_the_real_state(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    classes: tuple[str, str],
) -> None:
    cluster = reconfigurable_cluster
    high, low = classes
    node_pool.add(4, gpus=8)
    fragment(api, namespace, node_pool, low)
    lease = (namespace, f"packer-{uuid.uuid4().hex[:6]}")
    filter_url = cluster.extender_url + schedconfig.extender_path(cluster.base_scheduler_config)
    filter_url += "/filter"

    with PodWatch(api, namespace) as watched:
        cluster.start_extender(env=packer_env(cluster, lease, "packer-first"))
        workload.create_pods(api, [trainer(t, namespace, node_pool, high) for t in TRAINERS])
        # While the plan runs, the probe sees its reservations (so it can tell).
        wait_for(
            "the plan's reservations on the filter",
            lambda: reservations_seen(api, namespace, filter_url, node_pool.node_names),
            timeout=180,
        )
        wait_for("the plan's first eviction", watched.going, timeout=60, interval=0.05)
        first_calls = eviction_calls(cluster.extender_endpoint.metrics_url)
        os.killpg(cluster.pids()["extender"], signal.SIGKILL)
        killed_at = time.monotonic()
        cluster.stop_extender()  # reaps it
        time.sleep(1.0)  # a bind the killed process had already sent may still land
        while_down = {p["metadata"]["uid"] for p in bound(live(api, namespace))}
        time.sleep(4.0)
        # kube-scheduler keeps trying the evicted pod's replacement; nothing binds it
        # past the extender, and nothing is over-allocated.
        assert {p["metadata"]["uid"] for p in bound(live(api, namespace))} == while_down
        assert overallocated(api) == {}

        restarted = time.monotonic()
        cluster.start_extender(env=packer_env(cluster, lease, "packer-second"))
        # The killed replica's reservations died with it: none on the restarted filter,
        # which has made no plan of its own yet (it announces before it reserves).
        after_restart = reservations_seen(api, namespace, filter_url, node_pool.node_names)
        assert not [a for a in announced(api, namespace) if a.instance == "packer-second"]
        assert after_restart == {}

        wait_settled(api, namespace)
        record(
            "faults", "packer restart to every pod placed (s)", round(time.monotonic() - restarted)
        )
        # The successor's own reservations end once their pods have arrived.
        wait_for(
            "the restarted packer's reservations released",
            lambda: not reservations_seen(api, namespace, filter_url, node_pool.node_names),
            timeout=60,
        )
    assert watched.failure is None, watched.failure
    assert overallocated(api) == {}
    second_calls = eviction_calls(cluster.extender_endpoint.metrics_url)
    actions = announced(api, namespace)
    check_no_eviction_twice(
        actions,
        watched,
        killed_at,
        ("packer-first", first_calls),
        ("packer-second", second_calls),
    )
    record(
        "faults",
        "packer evictions before kill / after restart",
        f"{first_calls['evicted']}/{second_calls['evicted']}",
    )


def test_two_packer_replicas_the_standby_takes_over_and_no_eviction_happens_twice(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    classes: tuple[str, str],
) -> None:
    cluster = reconfigurable_cluster
    high, low = classes
    node_pool.add(4, gpus=8)
    fragment(api, namespace, node_pool, low)
    lease = (namespace, f"packer-{uuid.uuid4().hex[:6]}")

    # The first replica runs beside the control plane's extender, the one kube-scheduler
    # calls: the survivor must be that one, for its filter to honour its reservations
    # (reservations are not shared between replicas, see the README's packer section).
    port = free_port()
    leader = ManagedProcess(
        "packer-replica-a",
        [sys.executable, "-m", "scheduler_extender.cli", "serve",
         "--kubeconfig", str(cluster.kubeconfig), "--host", "127.0.0.1", "--port", str(port),
         "--url-prefix", schedconfig.extender_path(cluster.base_scheduler_config)],
        cluster.logs_dir / "packer-replica-a.log",
        env=packer_env(cluster, lease, "replica-a"),
        port=port,
    )  # fmt: skip
    leader_metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(
            "replica-a ready and holding the packer Lease",
            lambda: lease_holder(api, *lease) == "replica-a",
            timeout=120,
            interval=0.5,
            process=leader,
        )
        cluster.start_extender(env=packer_env(cluster, lease, "replica-b"))
        with PodWatch(api, namespace) as watched:
            workload.create_pods(api, [trainer(t, namespace, node_pool, high) for t in TRAINERS])
            wait_for("the leader's first eviction", watched.going, timeout=180, interval=0.05)
            # Only the leader planned: the standby has announced and evicted nothing.
            assert lease_holder(api, *lease) == "replica-a"
            assert not [a for a in announced(api, namespace) if a.instance == "replica-b"]
            assert eviction_calls(cluster.extender_endpoint.metrics_url).get("evicted") == 0
            first_calls = eviction_calls(leader_metrics)
            os.killpg(leader.pid, signal.SIGKILL)  # a crash: the Lease is not released
            killed_at = time.monotonic()

            wait_for(
                "replica-b to take the packer Lease",
                lambda: lease_holder(api, *lease) == "replica-b",
                timeout=TAKEOVER_BOUND * 3,
            )
            took = time.monotonic() - killed_at
            record("faults", "packer failover after SIGKILL (s)", round(took, 1))
            assert took <= TAKEOVER_BOUND, took

            wait_settled(api, namespace)
        assert watched.failure is None, watched.failure
        assert overallocated(api) == {}
        second_calls = eviction_calls(cluster.extender_endpoint.metrics_url)
        check_no_eviction_twice(
            announced(api, namespace),
            watched,
            killed_at,
            ("replica-a", first_calls),
            ("replica-b", second_calls),
        )
    finally:
        leader.stop()
