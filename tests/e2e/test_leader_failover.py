"""Two controller replicas: kill the leader, the standby takes over within the lease."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from pathlib import Path

from kubernetes import client

from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.processes import ManagedProcess, free_port
from tests.e2e.helpers import wait_for
from tests.support.figures import record

LEASE_SECONDS = 6


def holder(api: client.ApiClient, namespace: str, lease: str) -> str | None:
    try:
        spec = client.CoordinationV1Api(api).read_namespaced_lease(lease, namespace).spec
    except client.ApiException:
        return None
    return spec.holder_identity or None


def test_standby_controller_takes_over_within_the_lease(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    lease = f"controller-{uuid.uuid4().hex[:6]}"
    closed_port = free_port()  # no Prometheus: leadership does not depend on it

    def controller(identity: str) -> ManagedProcess:
        port = free_port()
        return ManagedProcess(
            identity,
            [sys.executable, "-m", "scheduler_extender.cli", "controller",
             "--kubeconfig", str(cluster.kubeconfig),
             "--prometheus-url", f"http://127.0.0.1:{closed_port}",
             "--metrics-port", str(port), "--lease-name", lease,
             "--lease-namespace", namespace, "--identity", identity,
             "--namespace", namespace, "--sync-interval", "2s"],
            tmp_path / f"{identity}.log",
            env={
                "SCHEDULER_EXTENDER_CONTROLLER__LEASE_DURATION": str(LEASE_SECONDS),
                "SCHEDULER_EXTENDER_CONTROLLER__RENEW_DEADLINE": "4",
                "SCHEDULER_EXTENDER_CONTROLLER__RETRY_PERIOD": "1",
            },
            port=port,
        )  # fmt: skip

    first, second = controller("replica-a"), controller("replica-b")
    try:
        leader = wait_for("a leader", lambda: holder(api, namespace, lease), timeout=60)
        standby = "replica-b" if leader == "replica-a" else "replica-a"
        victim = first if leader == "replica-a" else second
        time.sleep(2 * LEASE_SECONDS)  # the standby stays a standby while the leader lives
        assert holder(api, namespace, lease) == leader
        os.killpg(victim.pid, signal.SIGKILL)  # a crash: no chance to release the Lease
        killed = time.monotonic()
        wait_for(
            f"{standby} to take the Lease",
            lambda: holder(api, namespace, lease) == standby,
            timeout=LEASE_SECONDS * 4,
        )
        took = time.monotonic() - killed
        record("faults", "controller failover after SIGKILL (s)", round(took, 1))
        # Within the lease duration plus one retry period and a renew, as client-go promises.
        assert took <= LEASE_SECONDS + 4, took
    finally:
        first.stop()
        second.stop()
