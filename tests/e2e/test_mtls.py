"""Untrusted callers: kube-scheduler reaches the extender over mTLS, nobody else does."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.processes import free_port
from tests.e2e.helpers import NodePool, bound, extender_decisions, list_pods, wait_for
from tests.support.tls import Issued, TestCA


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def mtls_cluster(
    reconfigurable_cluster: LocalCluster, tmp_path: Path
) -> tuple[LocalCluster, TestCA, int]:
    """The extender requiring client certificates; kube-scheduler presenting one."""
    cluster = reconfigurable_cluster
    ca = TestCA(tmp_path / "pki")
    server = ca.server("extender")
    scheduler = ca.client("kube-scheduler")
    probe_port = free_port()
    cluster.start_extender(
        env={
            "SCHEDULER_EXTENDER_TLS_CERT_FILE": str(server.cert),
            "SCHEDULER_EXTENDER_TLS_KEY_FILE": str(server.key),
            "SCHEDULER_EXTENDER_TLS_CLIENT_CA_FILE": str(ca.cert),
            "SCHEDULER_EXTENDER_PROBE_PORT": str(probe_port),
            "SCHEDULER_EXTENDER_DEBUG_ENDPOINTS": "true",
        },
        ready_url=f"http://127.0.0.1:{probe_port}/readyz",
    )
    cluster.start_scheduler(
        extender=True,
        ignorable=False,
        extender_tls={
            "certData": b64(scheduler.cert),
            "keyData": b64(scheduler.key),
            "caData": b64(ca.cert),
        },
    )
    return cluster, ca, probe_port


def https(ca: TestCA, client_cert: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if client_cert is not None:
        context.load_cert_chain(str(client_cert.cert), str(client_cert.key))
    return context


def test_kube_scheduler_binds_over_mtls_and_others_are_refused(
    mtls_cluster: tuple[LocalCluster, TestCA, int],
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    tmp_path: Path,
) -> None:
    cluster, ca, probe_port = mtls_cluster
    metrics_url = f"http://127.0.0.1:{probe_port}/metrics"
    node_pool.add(2, gpus=4)
    workload.create_pods(api, [node_pool.pod(f"tls-{i}", namespace=namespace) for i in range(3)])
    wait_for("3 pods bound over mTLS", lambda: len(bound(list_pods(api, namespace))) == 3)
    decisions = extender_decisions(metrics_url)
    assert decisions[("filter", "feasible")] >= 3
    assert decisions[("bind", "bound")] >= 3

    base = f"https://127.0.0.1:{cluster.extender_endpoint.port}"
    rogue = TestCA(tmp_path / "rogue", name="rogue-ca").client("intruder")
    requests = [
        ("POST", "/scheduler/filter", {"Pod": {"metadata": {"name": "x"}}, "NodeNames": []}),
        ("POST", "/scheduler/bind", {"PodName": "x", "PodNamespace": namespace, "PodUID": "u", "Node": "n"}),
        ("GET", "/debug/scores?pod=default/x", None),
    ]  # fmt: skip
    for who in (None, rogue):
        with httpx.Client(base_url=base, verify=https(ca, who), timeout=5) as intruder:
            for method, path, body in requests:
                with pytest.raises(
                    (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
                ):
                    intruder.request(method, path, json=body)
    # With a certificate from the right CA the same call is answered.
    good = ca.client("operator")
    with httpx.Client(base_url=base, verify=https(ca, good), timeout=5) as operator:
        assert operator.get("/healthz").status_code == 200
    # Plain HTTP on the TLS port gets nothing either.
    with pytest.raises(httpx.HTTPError):
        httpx.post(
            f"http://127.0.0.1:{cluster.extender_endpoint.port}/scheduler/filter",
            json={},
            timeout=5,
        )
