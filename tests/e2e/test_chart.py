"""The Helm chart against the real API server of the local control plane.

- Every rendering (default values and each ci/ file) is applied with server-side dry-run, after
  the AgentAutoscaler CRD and the prometheus-operator and cert-manager CRDs (from their Go modules,
  cached by ``go mod download`` outside the repository) are installed.
- A real ``helm install`` of the chart with monitoring on; the API server then holds its objects:
  the scheduler pods (kube-scheduler with the extender as a second container), no extender
  Deployment, no Service of the extender's webhooks.
- RBAC: ``kubectl auth can-i --as=system:serviceaccount:NS:SA`` for what each pod needs (the
  scheduler pods' one account serves kube-scheduler and the extender), and a list of dangerous
  requests that must be denied.
- The secondary scheduler's KubeSchedulerConfiguration, as installed (the extender on loopback,
  not ignorable), runs in the real kube-scheduler binary with the scheduler pods' ServiceAccount
  token (so the chart's RBAC), and places a GPU pod through the extender; the extender, with the
  same token, binds and takes the packer's Lease.
- The CRD's validation and printer columns, as the API server applies them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from scheduler_extender.devcluster import schedconfig
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.controller import start_controller
from scheduler_extender.devcluster.processes import ManagedProcess, free_port
from scheduler_extender.devcluster.tools import Tools
from tests.e2e.helpers import NodePool, extender_decisions, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "scheduler-extender"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
AAS_CRD = REPO / "deploy" / "crds" / "agentautoscalers.scheduler-extender.io.yaml"
# The CRDs of the optional APIs the chart renders for, from the projects' own Go modules.
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
OPERATOR_CRDS = ("servicemonitors", "prometheusrules")
CERT_MANAGER = ("github.com/cert-manager/cert-manager", "v1.18.2")
APIS = ("monitoring.coreos.com/v1", "cert-manager.io/v1")


def go_module_dir(module: str, version: str) -> Path:
    """The module's source in the Go module cache (downloaded from the Go proxy once)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is needed to fetch CRDs from Go modules (see make tools)")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
        cwd=os.environ.get("TMPDIR", "/tmp"),  # outside any module: no go.mod to consult
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        pytest.fail(f"go mod download {module}@{version}: {info.get('Error') or result.stderr}")
    return Path(info["Dir"])


def third_party_crds() -> list[dict[str, Any]]:
    operator = go_module_dir(*PROMETHEUS_OPERATOR) / "example" / "prometheus-operator-crd"
    crds = [
        yaml.safe_load((operator / f"monitoring.coreos.com_{name}.yaml").read_text())
        for name in OPERATOR_CRDS
    ]
    # cert-manager's CRD files double as Helm templates: the templating sits in comments and in
    # label values, which are dropped here.
    certificate = yaml.safe_load(
        (go_module_dir(*CERT_MANAGER) / "deploy" / "crds" / "crd-certificates.yaml").read_text()
    )
    certificate["metadata"] = {"name": certificate["metadata"]["name"]}
    return [*crds, certificate]


@pytest.fixture(scope="module")
def crds(cluster: LocalCluster) -> Iterator[None]:
    """Installs the CRDs the chart's objects need; removes those this module created."""
    documents = [yaml.safe_load(AAS_CRD.read_text()), *third_party_crds()]
    names = [d["metadata"]["name"] for d in documents]
    existing = set(
        cluster.kubectl("get", "crd", "-o", "name")
        .stdout.replace("customresourcedefinition.apiextensions.k8s.io/", "")
        .split()
    )
    created = [n for n in names if n not in existing]
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=chart-e2e", "-f", "-",
        input=yaml.safe_dump_all(documents),
    )  # fmt: skip
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names]
    )
    yield
    if created:
        cluster.kubectl("delete", "crd", "--wait=false", *created)


def helm(tools: Tools, cluster: LocalCluster, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        [str(tools.helm), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def wait_for_counted_binds(cluster: LocalCluster, total: int) -> None:
    """The API server answers the extender's binding before the extender counts it."""
    wait_for(
        "the extender to count its bind",
        lambda: (
            extender_decisions(cluster.extender_endpoint.metrics_url)[("bind", "bound")] == total
        ),
        timeout=10,
    )


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "default")
@pytest.mark.usefixtures("crds")
def test_rendered_manifests_pass_server_side_dry_run(
    tools: Tools, cluster: LocalCluster, namespace: str, values: Path | None
) -> None:
    args = ["template", "rel", str(CHART), "--namespace", namespace]
    args += ["--kube-version", tools.kubernetes_version]
    for api in APIS:
        args += ["--api-versions", api]
    if values is not None:
        args += ["--values", str(values)]
    rendered = helm(tools, cluster, *args)
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    result = cluster.kubectl(
        # Every rendered object names its namespace (the release's, or kube-system).
        "apply", "--server-side", "--dry-run=server", "--field-manager=chart-e2e", "-f", "-",
        input=rendered, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # kubectl names every object it accepted; nothing was skipped.
    assert result.stdout.count("serverside-applied") == rendered.count("\nkind: "), result.stdout
    if values is not None and values.name == "monitoring-values.yaml":
        assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    if values is not None and values.name == "networkpolicy-values.yaml":
        assert "NetworkPolicy" in kinds
    assert "Certificate" not in kinds  # nothing to secure: the extender is on the pods' loopback


@pytest.fixture
def release(
    tools: Tools, cluster: LocalCluster, namespace: str, crds: None
) -> Iterator[dict[str, str]]:
    """The chart installed with helm, every component and monitoring on."""
    name = f"chart-{uuid.uuid4().hex[:6]}"
    scheduler_name = f"{name}-gpu"
    notes = helm(
        tools, cluster, "install", name, str(CHART), "--namespace", namespace,
        "--values", str(CHART / "ci" / "monitoring-values.yaml"),
        "--set", f"schedulerName={scheduler_name}",
    )  # fmt: skip
    yield {"name": name, "namespace": namespace, "scheduler": scheduler_name, "notes": notes}
    helm(tools, cluster, "uninstall", name, "--namespace", namespace, "--wait", "--timeout=60s")


def test_helm_install_creates_every_object(cluster: LocalCluster, release: dict[str, str]) -> None:
    ns, name = release["namespace"], release["name"]
    assert f"schedulerName: {release['scheduler']}" in release["notes"]
    listed = cluster.kubectl(
        "get", "deployments,services,configmaps,serviceaccounts,roles,rolebindings,"
        "servicemonitors,prometheusrules,poddisruptionbudgets",
        "-n", ns, "-l", f"app.kubernetes.io/instance={name}", "-o", "json",
    )  # fmt: skip
    items = json.loads(listed.stdout)["items"]
    objects = {(o["kind"], o["metadata"]["name"]) for o in items}
    prefix = f"{name}-scheduler-extender"
    for component in ("scheduler", "controller"):
        assert ("Deployment", f"{prefix}-{component}") in objects
        assert ("ServiceAccount", f"{prefix}-{component}") in objects
    # The extender is a container of the scheduler pods, not a Deployment of its own, and has no
    # account of its own; no Service carries its webhooks.
    assert ("Deployment", f"{prefix}-extender") not in objects
    assert ("ServiceAccount", f"{prefix}-extender") not in objects
    assert ("Service", prefix) not in objects
    (scheduler,) = [
        o
        for o in items
        if (o["kind"], o["metadata"]["name"]) == ("Deployment", f"{prefix}-scheduler")
    ]
    assert scheduler["spec"]["replicas"] == 2
    pod = scheduler["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["kube-scheduler", "extender"]
    (extender,) = [c for c in pod["containers"] if c["name"] == "extender"]
    assert {e["name"]: e.get("value") for e in extender["env"]}["SCHEDULER_EXTENDER_HOST"] == (
        "127.0.0.1"
    )
    (metrics,) = [
        o for o in items if (o["kind"], o["metadata"]["name"]) == ("Service", f"{prefix}-extender")
    ]
    assert [p["name"] for p in metrics["spec"]["ports"]] == ["metrics"]
    assert metrics["spec"]["selector"] == scheduler["spec"]["selector"]["matchLabels"]
    assert ("PodDisruptionBudget", f"{prefix}-scheduler") in objects
    assert ("PrometheusRule", prefix) in objects
    monitors = {n for kind, n in objects if kind == "ServiceMonitor"}
    assert len(monitors) == 3  # extender, scheduler, controller
    dashboards = [n for kind, n in objects if kind == "ConfigMap" and "-dashboard-" in n]
    assert len(dashboards) == len(list((CHART / "dashboards").glob("*.json")))
    cluster.kubectl("get", "crd", "agentautoscalers.scheduler-extender.io")
    status = json.loads(
        subprocess.run(
            [str(cluster.tools.helm), "--kubeconfig", str(cluster.kubeconfig),
             "status", name, "-n", ns, "-o", "json"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
    )  # fmt: skip
    assert status["info"]["status"] == "deployed"


def can_i(cluster: LocalCluster, account: str, namespace: str, *request: str) -> bool:
    result = cluster.kubectl(
        "auth", "can-i", *request, f"--as=system:serviceaccount:{namespace}:{account}",
        check=False,
    )  # fmt: skip
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def test_rbac_allows_what_each_component_needs_and_nothing_dangerous(
    cluster: LocalCluster, release: dict[str, str]
) -> None:
    ns, name = release["namespace"], release["name"]
    scheduler, controller = (f"{name}-scheduler-extender-{c}" for c in ("scheduler", "controller"))
    packer_lease = f"{name}-scheduler-extender-extender"
    elsewhere = "kube-system"
    # The scheduler pods' one account: what kube-scheduler needs and what the extender beside it
    # needs.
    needed = {
        scheduler: [
            # kube-scheduler
            ("list", "nodes"), ("watch", "pods", "-A"), ("create", "pods", "--subresource=binding", "-n", elsewhere),
            ("patch", "pods", "--subresource=status", "-n", elsewhere),
            ("get", "configmaps/extension-apiserver-authentication", "-n", "kube-system"),
            ("create", "leases.coordination.k8s.io", "-n", ns),
            ("get", f"leases.coordination.k8s.io/{scheduler}", "-n", ns),
            ("update", f"leases.coordination.k8s.io/{scheduler}", "-n", ns),
            # the extender
            ("get", "nodes"), ("list", "nodes"), ("watch", "nodes"),
            ("list", "pods", "-A"), ("watch", "pods", "-A"), ("get", "pods", "-n", elsewhere),
            ("patch", "pods", "-n", elsewhere),
            ("create", "pods", "--subresource=binding", "-n", elsewhere), ("create", "pods", "--subresource=eviction", "-n", elsewhere),
            ("list", "poddisruptionbudgets.policy", "-A"), ("watch", "poddisruptionbudgets.policy", "-A"),
            ("create", "events", "-n", elsewhere),  # the packer records its plans on the pods
            ("get", f"leases.coordination.k8s.io/{packer_lease}", "-n", ns),
            ("update", f"leases.coordination.k8s.io/{packer_lease}", "-n", ns),
        ],
        controller: [
            ("list", "agentautoscalers.scheduler-extender.io", "-A"),
            ("watch", "agentautoscalers.scheduler-extender.io", "-A"),
            ("patch", "agentautoscalers.scheduler-extender.io", "--subresource=status", "-n", elsewhere),
            ("get", "deployments.apps", "--subresource=scale", "-n", elsewhere),
            ("patch", "deployments.apps", "--subresource=scale", "-n", elsewhere),
            ("patch", "statefulsets.apps", "--subresource=scale", "-n", elsewhere),
            ("get", "deployments.apps", "-n", elsewhere),
            ("list", "horizontalpodautoscalers.autoscaling", "-n", elsewhere),
            ("create", "events", "-n", elsewhere),
            ("create", "leases.coordination.k8s.io", "-n", ns),
            ("update", f"leases.coordination.k8s.io/{controller}", "-n", ns),
        ],
    }  # fmt: skip
    dangerous = [
        ("get", "secrets", "-n", ns), ("list", "secrets", "-A"), ("create", "secrets", "-n", ns),
        ("delete", "nodes"), ("update", "nodes"), ("create", "clusterrolebindings"),
        ("create", "rolebindings", "-n", ns), ("escalate", "clusterroles"),
        ("impersonate", "serviceaccounts", "-n", ns), ("create", "pods", "--subresource=exec", "-n", elsewhere),
        ("create", "deployments.apps", "-n", elsewhere), ("delete", "namespaces"),
        ("update", "configmaps", "-n", "kube-system"), ("*", "*"),
        ("update", "leases.coordination.k8s.io/some-other-lease", "-n", ns),
    ]  # fmt: skip
    for account, requests in needed.items():
        denied = [r for r in requests if not can_i(cluster, account, ns, *r)]
        assert denied == [], f"{account} may not {denied}"
        allowed = [r for r in dangerous if can_i(cluster, account, ns, *r)]
        assert allowed == [], f"{account} may {allowed}"
    # The extender account is gone: nothing is bound to a name no pod runs as.
    assert not can_i(cluster, f"{name}-scheduler-extender-extender", ns, "list", "nodes")
    # Only kube-scheduler deletes pods (preemption); the controller never does.
    assert not can_i(cluster, controller, ns, "delete", "pods", "-n", elsewhere)
    assert not can_i(
        cluster, scheduler, ns, "update", "deployments.apps", "--subresource=scale", "-n", elsewhere
    )
    assert not can_i(
        cluster, controller, ns, "create", "pods", "--subresource=binding", "-n", elsewhere
    )
    # Each pod renews only its own Leases, not each other's.
    assert not can_i(
        cluster, controller, ns, "update", f"leases.coordination.k8s.io/{packer_lease}", "-n", ns
    )
    assert not can_i(
        cluster, scheduler, ns, "update", f"leases.coordination.k8s.io/{controller}", "-n", ns
    )


def token_kubeconfig(cluster: LocalCluster, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a bound token from TokenRequest)."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    (entry,) = admin["clusters"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": entry["cluster"]}],
                "users": [{"name": account, "user": {"token": token.strip()}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
                "current-context": "sa",
            }
        )
    )
    return path


# What the local run decides for the extender process itself: its address (the cluster's port on
# 127.0.0.1) and that it serves no separate probe port.
LOCAL_EXTENDER_SETTINGS = {
    "SCHEDULER_EXTENDER_HOST",
    "SCHEDULER_EXTENDER_PORT",
    "SCHEDULER_EXTENDER_PROBE_PORT",
    "SCHEDULER_EXTENDER_PROBE_HOST",
}


def chart_extender_env(cluster: LocalCluster, name: str, namespace: str) -> dict[str, str]:
    """The environment of the installed scheduler pods' extender container (its literal values)."""
    deployment = json.loads(
        cluster.kubectl(
            "get", "deployment", f"{name}-scheduler-extender-scheduler", "-n", namespace,
            "-o", "json",
        ).stdout
    )  # fmt: skip
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "extender"
    ]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_the_installed_scheduler_pod_schedules_with_the_chart_rbac(
    tools: Tools,
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    release: dict[str, str],
    node_pool: NodePool,
    tmp_path: Path,
) -> None:
    """The scheduler pod as installed: kube-scheduler with the installed configuration and the
    extender with the installed container's settings (its scheduler name among them: it refuses
    to bind pods of another scheduler, and the refusal holds), both as the pods' ServiceAccount."""
    cluster = reconfigurable_cluster
    ns, name = release["namespace"], release["name"]
    configmap = json.loads(
        cluster.kubectl("get", "configmap", f"{name}-scheduler-extender-scheduler", "-n", ns, "-o", "json").stdout
    )  # fmt: skip
    config = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    (extender,) = config["extenders"]
    # The extender container beside kube-scheduler, on the pod's loopback; a binder whose errors
    # kube-scheduler may not skip.
    assert extender["urlPrefix"] == "http://127.0.0.1:8888/scheduler"
    assert extender["ignorable"] is False
    # The chart's configuration, as installed, with only what differs on this machine: the
    # extender's port (the session's extender on 127.0.0.1) and the in-cluster credentials.
    extender["urlPrefix"] = schedconfig.with_extender_address(
        extender["urlPrefix"], cluster.extender_endpoint.url
    )
    account = f"{name}-scheduler-extender-scheduler"
    kubeconfig = token_kubeconfig(cluster, account, ns, tmp_path / "kubeconfig")
    config["clientConnection"] = {"kubeconfig": str(kubeconfig)}
    env = chart_extender_env(cluster, name, ns)
    assert env["SCHEDULER_EXTENDER_HOST"] == "127.0.0.1"
    assert env["SCHEDULER_EXTENDER_SCHEDULER_NAME"] == release["scheduler"]
    # The last --kubeconfig wins: the extender runs as the pods' ServiceAccount.
    cluster.start_extender(
        env={k: v for k, v in env.items() if k not in LOCAL_EXTENDER_SETTINGS},
        args=["--kubeconfig", str(kubeconfig)],
    )
    source = tmp_path / "scheduler-config.yaml"
    source.write_text(yaml.safe_dump(config))

    port = free_port()
    process = ManagedProcess(
        "chart-kube-scheduler",
        [str(tools.kube_scheduler), f"--config={source}", "--bind-address=127.0.0.1",
         f"--secure-port={port}", "--v=2"],
        tmp_path / "kube-scheduler.log",
        port=port,
    )  # fmt: skip
    try:

        def ready() -> bool:
            process.check_running()
            try:
                return (
                    httpx.get(
                        f"https://127.0.0.1:{port}/readyz", verify=False, timeout=2
                    ).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        wait_for("the chart's kube-scheduler to be ready", ready, timeout=60)
        # The Lease is the chart's, "<fullname>-scheduler" in the release namespace.
        wait_for("the scheduler to take its Lease", lambda: _lease_holder(api, ns, account))
        node_pool.add(2, gpus=4)
        before = extender_decisions(cluster.extender_endpoint.metrics_url)[("bind", "bound")]
        pod = node_pool.pod("via-chart-scheduler", namespace=ns, gpus=2)
        pod["spec"]["schedulerName"] = release["scheduler"]
        client.CoreV1Api(api).create_namespaced_pod(ns, pod)
        node = wait_for(
            "the pod to be bound by the chart's scheduler through the extender",
            lambda: (
                client.CoreV1Api(api).read_namespaced_pod("via-chart-scheduler", ns).spec.node_name
            ),
            timeout=60,
        )
        assert node in node_pool.node_names
        # The extender bound it (kube-scheduler's DefaultBinder never does for a managed pod).
        wait_for_counted_binds(cluster, before + 1)
    finally:
        process.stop()
    log = (tmp_path / "kube-scheduler.log").read_text()
    assert "forbidden" not in log.lower(), "kube-scheduler hit RBAC denials with the chart's roles"
    extender_log = cluster.logs["extender"].read_text()
    assert "forbidden" not in extender_log.lower(), "the extender hit RBAC denials"


def _lease_holder(api: client.ApiClient, namespace: str, lease: str) -> str | None:
    try:
        found = client.CoordinationV1Api(api).read_namespaced_lease(lease, namespace)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    holder: str | None = found.spec.holder_identity
    return holder


@pytest.mark.usefixtures("crds")
def test_the_api_server_validates_agent_autoscalers(cluster: LocalCluster, namespace: str) -> None:
    def autoscaler(name: str, **spec: Any) -> str:
        body = {
            "apiVersion": "scheduler-extender.io/v1alpha1",
            "kind": "AgentAutoscaler",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "chat"},
                "agent": "chat",
                "maxReplicas": 4,
                "targetRequestsPerReplica": 20,
                **spec,
            },
        }
        return yaml.safe_dump(body)

    cluster.kubectl("apply", "-f", "-", input=autoscaler("good"))
    stored = json.loads(cluster.kubectl("get", "aas", "good", "-n", namespace, "-o", "json").stdout)
    spec = stored["spec"]
    assert (spec["leadTime"], spec["quantile"], spec["mode"]) == ("5m", 0.9, "Auto")
    assert (spec["minReplicas"], spec["scaleTargetRef"]["apiVersion"]) == (1, "apps/v1")
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    table = cluster.kubectl("get", "aas", "-n", namespace).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "TARGET",
        "AGENT",
        "CURRENT",
        "DESIRED",
        "FORECAST",
        "MODE",
        "AGE",
    ]
    assert table[1].split()[:3] == ["good", "chat", "chat"]

    for bad, message in [
        ({"minReplicas": 5}, "minReplicas must not exceed maxReplicas"),
        ({"mode": "Sometimes"}, "Unsupported value"),
        ({"leadTime": "48h"}, "leadTime must be at most 24h"),
        ({"leadTime": "five minutes"}, "spec.leadTime"),
        ({"targetRequestsPerReplica": 0}, "spec.targetRequestsPerReplica"),
        ({"quantile": 1}, "spec.quantile"),
    ]:
        result = cluster.kubectl("apply", "-f", "-", input=autoscaler("bad", **bad), check=False)
        assert result.returncode != 0, bad
        assert message in result.stderr, result.stderr


# Panels this test cannot fill yet, and why. Every other panel must return data.
@pytest.mark.slow
@pytest.mark.usefixtures("crds")
def test_every_dashboard_panel_returns_data_from_a_real_prometheus(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    tmp_path: Path,
) -> None:
    """A real Prometheus scrapes the real extender and controller (and synthetic agent traffic
    with two days of backfilled history) while GPU pods are scheduled and an AgentAutoscaler
    scales a Deployment; then every panel's query, variables expanded as Grafana does with "All",
    must return at least one finite sample."""
    from scheduler_extender.devcluster import dashboards
    from scheduler_extender.devcluster import prometheus as prom

    cluster = reconfigurable_cluster
    traffic = prom.AgentTraffic(prom.zipf_rates(4, 20.0))
    exporter = prom.TrafficExporter(traffic)
    exporter.start()
    controller_port = free_port()
    history = tmp_path / "history.om"
    now = time.time()
    prom.write_history(
        history, traffic, start=now - 2 * 86400 - 900, end=now - 1, interval=15.0,
        instance=exporter.address,
    )  # fmt: skip
    server = prom.PrometheusServer(
        tmp_path / "prometheus",
        {
            prom.JOB: exporter.address,
            "extender": f"127.0.0.1:{cluster.extender_endpoint.port}",
            "controller": f"127.0.0.1:{controller_port}",
        },
        history=history,
    )
    controller: ManagedProcess | None = None
    apps = client.AppsV1Api(api)
    try:
        server.start()
        cluster.start_extender(
            env={
                "SCHEDULER_EXTENDER_PROMETHEUS__URL": server.url,
                "SCHEDULER_EXTENDER_PROMETHEUS__REFRESH_INTERVAL": "5s",
                "SCHEDULER_EXTENDER_PROMETHEUS__CORRECTION_INTERVAL": "2s",
                # One replica of an agent per node: the third replica makes the filter refuse.
                "SCHEDULER_EXTENDER_MAX_AGENT_REPLICAS_PER_NODE": "1",
                # The packer, in dry run and quick: the agent-0 pod the filter keeps pending makes
                # it solve every few seconds (finding nothing better), which fills its panels.
                "SCHEDULER_EXTENDER_PACKER__ENABLED": "true",
                "SCHEDULER_EXTENDER_PACKER__LEADER_ELECT": "false",
                "SCHEDULER_EXTENDER_PACKER__INTERVAL": "1s",
                "SCHEDULER_EXTENDER_PACKER__DEBOUNCE": "1s",
                "SCHEDULER_EXTENDER_PACKER__MIN_INTERVAL": "3s",
            }
        )
        controller = start_controller(
            cluster.kubeconfig,
            server.url,
            tmp_path / "controller.log",
            port=controller_port,
            env={"SCHEDULER_EXTENDER_CONTROLLER__FORECAST_REFRESH": "5s"},
        )
        server.wait_scraped(timeout=60)

        # The workload: agent-0's Deployment on a pool of three nodes, scaled by an
        # AgentAutoscaler (minReplicas 3 forces a scale-up at once), and one more agent-0 pod than
        # the pool has nodes, which the extender's per-node agent limit keeps pending.
        node_pool.add(3, gpus=4)
        template = node_pool.pod("agent-0", namespace=namespace, gpus=1, agent="agent-0")
        labels = {"app": "agent-0", **template["metadata"].get("labels", {})}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "agent-0", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "agent-0"}},
                "template": {"metadata": {"labels": labels}, "spec": template["spec"]},
            },
        }
        apps.create_namespaced_deployment(namespace, deployment)
        cluster.kubectl(
            "apply", "-f", "-",
            input=yaml.safe_dump({
                "apiVersion": "scheduler-extender.io/v1alpha1",
                "kind": "AgentAutoscaler",
                "metadata": {"name": "agent-0", "namespace": namespace},
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": "agent-0"},
                    "agent": "agent-0", "minReplicas": 3, "maxReplicas": 3,
                    "targetRequestsPerReplica": 100, "leadTime": "2m",
                },
            }),
        )  # fmt: skip
        extra = node_pool.pod("agent-0-extra", namespace=namespace, gpus=1, agent="agent-0")
        client.CoreV1Api(api).create_namespaced_pod(namespace, extra)

        def empty_panels() -> list[str]:
            # Keep the latency panels' rate() windows fed: on a slow machine the workload's
            # own scheduling calls may all fall before the last 30 s.
            httpx.post(
                f"{cluster.extender_endpoint.url}/scheduler/filter",
                json={"Pod": extra, "NodeNames": node_pool.node_names},
                timeout=10.0,
            )
            empty = []
            end = time.time()
            with httpx.Client(base_url=server.url, timeout=10.0) as http:
                for path in dashboards.dashboard_files():
                    board = dashboards.load(path)
                    for panel in dashboards.panels(board):
                        name = f"{path.stem}: {panel.title}"
                        for query in panel.queries:
                            series = dashboards.query_range(
                                http, dashboards.expand(query.expr, board, rate_interval="30s"),
                                start=end - 600, end=end, step=5, legend_format=query.legend,
                            )  # fmt: skip
                            finite = [v for s in series for v in s.values if math.isfinite(v)]
                            if not finite:
                                empty.append(f"{name} [{query.expr}]")
            return empty

        last: list[str] = []

        def all_have_data() -> bool:
            nonlocal last
            controller.check_running()
            last = empty_panels()
            return not last

        try:
            wait_for("every dashboard panel to return data", all_have_data, timeout=180, interval=5)
        except AssertionError:
            pytest.fail("panels without data:\n" + "\n".join(last))

        # scheduler-extender dashboards draws them from the same queries.
        preview = tmp_path / "dashboard-preview.png"
        empty = dashboards.render_png(
            dashboards.load(dashboards.MAIN_DASHBOARD), server.url, preview, minutes=10,
            rate_interval="30s",
        )  # fmt: skip
        assert preview.read_bytes().startswith(b"\x89PNG")
        assert not empty, f"preview panels without data: {empty}"
    finally:
        with contextlib.suppress(client.exceptions.ApiException):
            apps.delete_namespaced_deployment("agent-0", namespace)
        cluster.kubectl("delete", "aas", "--all", "-n", namespace, "--wait=false", check=False)
        if controller is not None:
            controller.stop()
        server.stop()
        exporter.stop()


def test_the_extender_schedules_with_the_chart_rbac_not_system_masters(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    release: dict[str, str],
    node_pool: NodePool,
    tmp_path: Path,
) -> None:
    cluster = reconfigurable_cluster
    ns, name = release["namespace"], release["name"]
    # The extender container runs as the scheduler pods' ServiceAccount.
    account = f"{name}-scheduler-extender-scheduler"
    kubeconfig = token_kubeconfig(cluster, account, ns, tmp_path / "extender-kubeconfig")
    # The chart's packer settings (in dry run): its Lease, in the release namespace (which a pod
    # gets from its own namespace), with the pod's name as identity.
    lease = chart_extender_env(cluster, name, ns)["SCHEDULER_EXTENDER_PACKER__LEASE_NAME"]
    identity = f"{name}-scheduler-extender-scheduler-0"
    # The last --kubeconfig wins: the extender runs as the chart's ServiceAccount.
    cluster.start_extender(
        env={
            "SCHEDULER_EXTENDER_PACKER__ENABLED": "true",
            "SCHEDULER_EXTENDER_PACKER__LEASE_NAME": lease,
            "SCHEDULER_EXTENDER_PACKER__LEASE_NAMESPACE": ns,
            "SCHEDULER_EXTENDER_PACKER__IDENTITY": identity,
        },
        args=["--kubeconfig", str(kubeconfig)],
    )
    wait_for(
        "the extender's packer to take its Lease with the chart's RBAC",
        lambda: _lease_holder(api, ns, lease) == identity,
        timeout=60,
    )
    node_pool.add(2, gpus=4)
    before = extender_decisions(cluster.extender_endpoint.metrics_url)[("bind", "bound")]
    pod = node_pool.pod("bound-under-chart-rbac", namespace=ns, gpus=1)
    client.CoreV1Api(api).create_namespaced_pod(ns, pod)
    node = wait_for(
        "the pod bound by the extender running with the chart's RBAC",
        lambda: (
            client.CoreV1Api(api).read_namespaced_pod(pod["metadata"]["name"], ns).spec.node_name
        ),
        timeout=60,
    )
    assert node in node_pool.node_names
    wait_for_counted_binds(cluster, before + 1)
    log = cluster.logs["extender"].read_text()
    assert "forbidden" not in log.lower(), "the extender hit RBAC denials with the chart's role"
