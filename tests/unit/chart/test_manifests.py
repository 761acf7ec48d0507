"""What the rendered manifests must say: labels, names, security, probes, TLS, gating."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart.conftest import (
    CERT_MANAGER_API,
    CHART,
    CI_VALUES,
    MONITORING_API,
    Manifest,
    Render,
    component,
    containers,
    env_of,
    find,
    one,
)

ALL_APIS = [MONITORING_API, CERT_MANAGER_API]
WORKLOADS = ("Deployment",)
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding"}


def pods_of(manifests: list[Manifest]) -> list[Manifest]:
    return find(manifests, "Deployment") + find(manifests, "Pod")


def everything(render: Render) -> list[list[Manifest]]:
    """The default render and every ci/ file, with every optional API present."""
    return [render(api_versions=ALL_APIS)] + [
        render(values=[v], api_versions=ALL_APIS) for v in CI_VALUES
    ]


def test_every_object_has_the_standard_labels(render: Render) -> None:
    for manifests in everything(render):
        for m in manifests:
            labels = m["metadata"]["labels"]
            where = f"{m['kind']} {m['metadata']['name']}"
            assert labels["app.kubernetes.io/name"] == "scheduler-extender", where
            assert labels["app.kubernetes.io/instance"] == "rel", where
            assert labels["app.kubernetes.io/managed-by"] == "Helm", where
            assert labels["helm.sh/chart"] == "scheduler-extender-0.1.0", where
            assert labels["app.kubernetes.io/component"] in {
                "extender", "scheduler", "controller", "monitoring", "test"
            }, where  # fmt: skip


def test_names_derive_from_the_release_and_namespaced_objects_name_their_namespace(
    render: Render,
) -> None:
    for m in render(release="alpha", namespace="team-a", api_versions=ALL_APIS):
        assert "alpha" in m["metadata"]["name"], m["metadata"]["name"]
        if m["kind"] not in CLUSTER_SCOPED:
            assert m["metadata"]["namespace"] in ("team-a", "kube-system"), m["metadata"]


def keys(manifests: list[Manifest]) -> set[tuple[str, str, str]]:
    return {
        (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]) for m in manifests
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [(("a", "ns"), ("b", "ns")), (("same", "ns-1"), ("same", "ns-2"))],
    ids=["two-names-one-namespace", "one-name-two-namespaces"],
)
def test_two_releases_do_not_collide(
    render: Render, first: tuple[str, str], second: tuple[str, str]
) -> None:
    values = [CHART / "ci" / "monitoring-values.yaml"]
    a = render(release=first[0], namespace=first[1], values=values, api_versions=ALL_APIS)
    b = render(release=second[0], namespace=second[1], values=values, api_versions=ALL_APIS)
    assert not keys(a) & keys(b)
    lease = {
        (m["metadata"]["namespace"], r["resourceNames"][0])
        for m in a + b
        if m["kind"] == "Role"
        for r in m["rules"]
        if "resourceNames" in r
    }
    assert len(lease) == len([m for m in a + b if m["kind"] == "Role"])


def test_one_object_per_name_within_a_release(render: Render) -> None:
    for manifests in everything(render):
        counts = Counter(
            (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])
            for m in manifests
        )
        assert [k for k, n in counts.items() if n > 1] == []


def test_containers_run_unprivileged(render: Render) -> None:
    for manifests in everything(render):
        for workload in pods_of(manifests):
            spec = (
                workload["spec"]["template"]["spec"]
                if "template" in workload["spec"]
                else workload["spec"]
            )
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            assert not spec.get("hostNetwork")
            assert not spec.get("hostPID")
            for c in containers(workload):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, c["name"]
                assert sc["readOnlyRootFilesystem"] is True, c["name"]
                assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
                assert not sc.get("privileged")


def container(manifest: Manifest, name: str) -> dict[str, Any]:
    (found,) = [c for c in containers(manifest) if c["name"] == name]
    return found


def scheduler_pod(manifests: list[Manifest]) -> Manifest:
    return component(manifests, "Deployment", "scheduler")


def extender_of(manifests: list[Manifest]) -> dict[str, Any]:
    return container(scheduler_pod(manifests), "extender")


def test_the_extender_is_a_container_of_the_scheduler_pods(render: Render) -> None:
    manifests = render()
    deployment = scheduler_pod(manifests)
    assert deployment["spec"]["replicas"] == 2
    assert [c["name"] for c in containers(deployment)] == ["kube-scheduler", "extender"]
    # No Deployment of its own: the scheduler pods are the only ones running the extender.
    assert [d["metadata"]["name"] for d in find(manifests, "Deployment")] == [
        "rel-scheduler-extender-scheduler"
    ]
    # Nor certificates: kube-scheduler and the extender talk over the pod's loopback.
    assert find(render(api_versions=ALL_APIS), "Certificate") == []
    extender = extender_of(manifests)
    assert extender["args"] == ["serve"]
    assert extender["image"] == "scheduler-extender:0.1.0"
    assert extender["resources"]["requests"]
    assert extender["resources"]["limits"]
    env = env_of(extender)
    assert env["SCHEDULER_EXTENDER_GPU_RESOURCE"] == "nvidia.com/gpu"
    assert env["SCHEDULER_EXTENDER_SCHEDULER_NAME"] == "gpu-scheduler"
    assert "SCHEDULER_EXTENDER_KUBECONFIG" not in env  # in-cluster configuration
    assert not [e for e in env if e.startswith("SCHEDULER_EXTENDER_TLS_")]
    # Both containers run as the pod's ServiceAccount, the scheduler's.
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "rel-scheduler-extender-scheduler"
    # Each container has its own scratch /tmp.
    mounts = {c["name"]: {m["name"] for m in c["volumeMounts"]} for c in containers(deployment)}
    assert mounts == {"kube-scheduler": {"config", "tmp"}, "extender": {"extender-tmp"}}


def test_the_webhooks_listen_on_loopback_and_the_probes_on_the_metrics_port(
    render: Render,
) -> None:
    manifests = render()
    extender = extender_of(manifests)
    env = env_of(extender)
    assert env["SCHEDULER_EXTENDER_HOST"] == "127.0.0.1"
    assert env["SCHEDULER_EXTENDER_PORT"] == "8888"
    assert env["SCHEDULER_EXTENDER_PROBE_HOST"] == "0.0.0.0"
    assert env["SCHEDULER_EXTENDER_PROBE_PORT"] == "8081"
    # Only the probe server's port is declared; the webhooks' is reachable from the pod alone.
    assert extender["ports"] == [{"name": "metrics", "containerPort": 8081, "protocol": "TCP"}]
    assert probes_of(extender) == {
        "readinessProbe": {"path": "/readyz", "port": "metrics", "scheme": "HTTP"},
        "livenessProbe": {"path": "/healthz", "port": "metrics", "scheme": "HTTP"},
    }


def scheduler_config(manifests: list[Manifest]) -> dict[str, Any]:
    configmap = one(manifests, "ConfigMap", "rel-scheduler-extender-scheduler")
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    return config


@pytest.mark.parametrize(
    "settings",
    [[], ["extender.port=9000", "extender.urlPrefix=/x/y", "extender.probePort=9100"]],
    ids=["default", "moved"],
)
def test_kube_scheduler_calls_the_extender_beside_it_not_ignorable(
    render: Render, settings: list[str]
) -> None:
    from urllib.parse import urlsplit

    manifests = render(set_values=settings)
    (entry,) = scheduler_config(manifests)["extenders"]
    env = env_of(extender_of(manifests))
    url = urlsplit(entry["urlPrefix"])
    assert (url.scheme, url.hostname, url.port) == (
        "http", env["SCHEDULER_EXTENDER_HOST"], int(env["SCHEDULER_EXTENDER_PORT"])
    )  # fmt: skip
    assert url.path == env["SCHEDULER_EXTENDER_URL_PREFIX"]
    assert entry["enableHTTPS"] is False
    assert "tlsConfig" not in entry
    assert entry["bindVerb"] == "bind"
    assert entry["ignorable"] is False  # a binder's errors must not be skipped


def test_no_service_exposes_the_webhooks(render: Render) -> None:
    for manifests in everything(render):
        pods = scheduler_pod(manifests)
        extender_port = int(env_of(extender_of(manifests))["SCHEDULER_EXTENDER_PORT"])
        declared = {p["name"]: p["containerPort"] for c in containers(pods) for p in c["ports"]}
        assert extender_port not in declared.values()
        for service in find(manifests, "Service"):
            if service["spec"]["selector"] != pods["spec"]["selector"]["matchLabels"]:
                continue
            targets = {port["targetPort"] for port in service["spec"]["ports"]}
            assert targets <= {"metrics", "https"}, service["metadata"]["name"]
            assert {declared[t] for t in targets} & {extender_port} == set()


def test_the_extender_service_is_headless_on_the_scheduler_pods_metrics_port(
    render: Render,
) -> None:
    manifests = render()
    service = one(manifests, "Service", "rel-scheduler-extender-extender")
    assert service["spec"]["clusterIP"] == "None"
    assert (
        service["spec"]["selector"] == scheduler_pod(manifests)["spec"]["selector"]["matchLabels"]
    )
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert find(manifests, "Service", "rel-scheduler-extender") == []  # the old webhook Service


def test_the_scheduler_pods_spread_and_keep_one_up(render: Render) -> None:
    manifests = render()
    deployment = scheduler_pod(manifests)
    spread = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = spread["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["metadata"]["name"] == "rel-scheduler-extender-scheduler"
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_hard_anti_affinity_and_single_replica_without_pdb(render: Render) -> None:
    hard = render(set_values=["scheduler.podAntiAffinity=hard"])
    spec = scheduler_pod(hard)["spec"]["template"]["spec"]
    assert spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    own = render(set_json=['scheduler.affinity={"nodeAffinity":{}}'])
    assert scheduler_pod(own)["spec"]["template"]["spec"]["affinity"] == {"nodeAffinity": {}}
    minimal = render(values=[CHART / "ci" / "minimal-values.yaml"])
    assert scheduler_pod(minimal)["spec"]["replicas"] == 1
    assert find(minimal, "PodDisruptionBudget") == []
    assert "affinity" not in scheduler_pod(minimal)["spec"]["template"]["spec"]
    single = render(set_values=["scheduler.replicas=1"])
    assert find(single, "PodDisruptionBudget") == []


def test_the_scheduler_pod_settings_apply_to_the_extender(render: Render) -> None:
    manifests = render(
        set_values=[
            "scheduler.priorityClassName=system-cluster-critical",
            "scheduler.nodeSelector.pool=system",
            "scheduler.podLabels.team=ml",
        ],
        set_json=['scheduler.tolerations=[{"key":"dedicated","operator":"Exists"}]'],
    )
    template = scheduler_pod(manifests)["spec"]["template"]
    assert template["spec"]["priorityClassName"] == "system-cluster-critical"
    assert template["spec"]["nodeSelector"] == {"pool": "system"}
    assert template["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert template["metadata"]["labels"]["team"] == "ml"


def test_extender_settings_become_environment_variables(render: Render) -> None:
    manifests = render(
        set_values=["extender.settings.maxAgentReplicasPerNode=2", "extender.extraEnv[0].name=X"],
        set_json=[
            'extender.settings.scoreWeights={"gpu_binpack":2}',
            'extender.settings.gpuModelCapacity={"NVIDIA-H100-80GB-HBM3":3}',
        ],
    )
    env = env_of(extender_of(manifests))
    capacity = yaml.safe_load(env["SCHEDULER_EXTENDER_GPU_MODEL_CAPACITY"])
    assert capacity == {"NVIDIA-H100-80GB-HBM3": 3}
    assert env["SCHEDULER_EXTENDER_MAX_AGENT_REPLICAS_PER_NODE"] == "2"
    assert yaml.safe_load(env["SCHEDULER_EXTENDER_SCORE_WEIGHTS"]) == {"gpu_binpack": 2}
    assert "X" in env
    assert "X" not in env_of(container(scheduler_pod(manifests), "kube-scheduler"))


@pytest.mark.parametrize(
    ("path", "model"),
    [
        (("extender", "settings"), "Settings"),
        (("extender", "packer"), "PackerSettings"),
        (("prometheus", "settings"), "PrometheusSettings"),
        (("controller", "settings"), "ControllerSettings"),
    ],
)
def test_settings_maps_name_real_settings_fields(path: tuple[str, str], model: str) -> None:
    """Every settings key the schema accepts is a field of the service's settings model."""
    import json
    import re

    from scheduler_extender import config

    schema = json.loads((CHART / "values.schema.json").read_text())
    accepted = schema["properties"][path[0]]["properties"][path[1]]["properties"]
    snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower() for key in accepted}
    fields = set(getattr(config, model).model_fields)
    assert snake
    assert snake <= fields, snake - fields


# Packer settings the chart sets itself: the Lease its Role allows, in the pod's namespace, and the
# pod's name as the leader-election identity.
CHART_SET_PACKER_SETTINGS = {"lease_name", "lease_namespace", "identity"}


def test_the_packer_schema_offers_every_other_packer_setting() -> None:
    import json
    import re

    from scheduler_extender.config import PackerSettings

    schema = json.loads((CHART / "values.schema.json").read_text())
    accepted = schema["properties"]["extender"]["properties"]["packer"]["properties"]
    snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower() for key in accepted}
    assert snake == set(PackerSettings.model_fields) - CHART_SET_PACKER_SETTINGS


def test_packer_values_reach_the_service_settings(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler_extender.config import Settings

    manifests = render(
        set_values=[
            "scheduler.replicas=1",
            "extender.packer.enabled=true",
            "extender.packer.dryRun=false",
            "extender.packer.timeLimit=2500ms",
            "extender.packer.evictionsPerMinute=4",
        ],
        set_json=['extender.packer.excludedNamespaces=["kube-system","batch"]'],
    )
    extender = extender_of(manifests)
    for name, value in env_of(extender).items():
        if name.startswith("SCHEDULER_EXTENDER_PACKER__"):
            monkeypatch.setenv(name, value)
    (identity,) = [e for e in extender["env"] if e["name"] == "SCHEDULER_EXTENDER_PACKER__IDENTITY"]
    assert identity["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    monkeypatch.delenv("SCHEDULER_EXTENDER_PACKER__IDENTITY")
    packer = Settings().packer
    assert packer.enabled is True
    assert packer.dry_run is False
    assert packer.time_limit == 2.5
    assert packer.evictions_per_minute == 4
    assert packer.excluded_namespaces == ["kube-system", "batch"]
    assert packer.lease_name == "rel-scheduler-extender-extender"


def test_several_seasons_reach_the_service_as_the_chart_renders_them(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler_extender.config import Settings

    manifests = render(
        set_values=["prometheus.url=http://prom:9090"],
        set_json=['prometheus.settings.season="1d,7d"'],
    )
    for name, value in env_of(extender_of(manifests)).items():
        if name.startswith("SCHEDULER_EXTENDER_PROMETHEUS__"):
            monkeypatch.setenv(name, value)
    assert Settings().prometheus.season == (86400.0, 7 * 86400.0)


def test_the_scheduler_runs_the_cluster_version_with_its_config(render: Render) -> None:
    manifests = render()
    deployment = scheduler_pod(manifests)
    scheduler = container(deployment, "kube-scheduler")
    assert scheduler["image"] == "registry.k8s.io/kube-scheduler:v1.36.4"
    assert "--config=/etc/kubernetes/scheduler/scheduler-config.yaml" in scheduler["command"]
    assert "--secure-port=10259" in scheduler["command"]
    assert container_ports(scheduler) == {"https": 10259}
    assert scheduler["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    config = one(manifests, "ConfigMap", "rel-scheduler-extender-scheduler")
    assert {"name": "config", "configMap": {"name": config["metadata"]["name"]}} in volumes
    assert not [v for v in volumes if "secret" in v]  # no TLS material: the extender is on loopback
    # A vendor build's version string still picks the upstream image of the same release.
    vendor = render(kube_version="v1.35.2-eks-1234567")
    scheduler = container(scheduler_pod(vendor), "kube-scheduler")
    assert scheduler["image"] == "registry.k8s.io/kube-scheduler:v1.35.2"


def test_the_scheduler_rolls_when_its_config_changes(render: Render) -> None:
    def checksum(manifests: list[Manifest]) -> str:
        deployment = component(manifests, "Deployment", "scheduler")
        annotation: str = deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return annotation

    assert checksum(render()) != checksum(render(set_values=["scheduler.extender.weight=7"]))


def test_helm_test_hook_calls_readyz_on_the_metrics_port_of_the_extender_service(
    render: Render,
) -> None:
    manifests = render()
    pod = one(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = " ".join(pod["spec"]["containers"][0]["command"])
    assert "http://rel-scheduler-extender-extender.ns.svc:8081/readyz" in command
    assert "volumes" not in pod["spec"]
    assert find(render(set_values=["tests.enabled=false"]), "Pod") == []


def probes_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def test_the_probe_port_follows_its_value_and_must_not_clash_in_the_pod(
    render: Render, helm: Any
) -> None:
    from tests.unit.chart.conftest import run_helm, template_args

    manifests = render(set_values=["extender.probePort=9100"])
    extender = extender_of(manifests)
    assert env_of(extender)["SCHEDULER_EXTENDER_PROBE_PORT"] == "9100"
    assert container_ports(extender) == {"metrics": 9100}
    service = one(manifests, "Service", "rel-scheduler-extender-extender")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(9100, "metrics")]
    assert (
        "extender-extender.ns.svc:9100/readyz"
        in one(manifests, "Pod")["spec"]["containers"][0]["command"][-1]
    )

    # The two containers share the pod's network: the extender's two ports and kube-scheduler's
    # secure port must differ.
    for clash in ("extender.probePort=8888", "extender.probePort=10259", "extender.port=10259"):
        result = run_helm(helm, *template_args(set_values=[clash]), check=False)
        assert result.returncode != 0, clash
        assert "must differ" in result.stderr, result.stderr


def test_the_service_reads_the_addresses_the_chart_sets(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler_extender.config import Settings

    extender = extender_of(render())
    for name, value in env_of(extender).items():
        if name.startswith("SCHEDULER_EXTENDER_") and "__" not in name:
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8888)
    assert (settings.probe_host, settings.probe_port) == (
        "0.0.0.0",
        container_ports(extender)["metrics"],
    )
    assert settings.url_prefix == "/scheduler"
    assert settings.tls_cert_file is None
    assert settings.tls_client_ca_file is None


def test_the_probe_port_serves_every_path_the_chart_asks_of_it(render: Render) -> None:
    """The paths of the httpGet probes, the ServiceMonitor and the helm test exist on the
    service's probe app."""
    from fastapi.testclient import TestClient

    from scheduler_extender.adapters.metrics import Metrics
    from scheduler_extender.api.app import create_probe_app

    manifests = render(set_values=["serviceMonitor.enabled=true"], api_versions=[MONITORING_API])
    extender = extender_of(manifests)
    (endpoint,) = component(manifests, "ServiceMonitor", "extender")["spec"]["endpoints"]
    paths = {probe["path"] for probe in probes_of(extender).values()} | {endpoint["path"]}
    assert "/readyz" in one(manifests, "Pod")["spec"]["containers"][0]["command"][-1]
    assert paths == {"/healthz", "/readyz", "/metrics"}
    with TestClient(create_probe_app(Metrics(), {})) as client:
        for path in sorted(paths):
            assert client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    ("setting", "where", "key"),
    [
        ("tls.enabled=true", "", "tls"),
        ("clusterDomain=example.org", "", "clusterDomain"),
        ("extender.replicas=2", "/extender", "replicas"),
        ("extender.podAntiAffinity=soft", "/extender", "podAntiAffinity"),
        ("extender.serviceAccount.create=true", "/extender", "serviceAccount"),
        ("extender.service.type=NodePort", "/extender/service", "type"),
        ("scheduler.extender.ignorable=true", "/scheduler/extender", "ignorable"),
    ],
)
def test_values_of_the_standalone_extender_are_refused(
    helm: Any, setting: str, where: str, key: str
) -> None:
    """The standalone Deployment, its TLS and an ignorable binder are gone; their values are
    errors rather than silently ignored."""
    from tests.unit.chart.conftest import run_helm, template_args

    result = run_helm(helm, *template_args(set_values=[setting]), check=False)
    assert result.returncode != 0, setting
    assert f"at '{where}': additional properties '{key}' not allowed" in result.stderr, (
        result.stderr
    )


def test_network_policy_admits_only_prometheus_and_the_test(render: Render) -> None:
    manifests = render(values=[CHART / "ci" / "networkpolicy-values.yaml"])
    policy = one(manifests, "NetworkPolicy")
    scheduler = scheduler_pod(manifests)
    assert policy["metadata"]["name"] == "rel-scheduler-extender-scheduler"
    assert (
        policy["spec"]["podSelector"]["matchLabels"] == scheduler["spec"]["selector"]["matchLabels"]
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    test_pod = one(manifests, "Pod")
    metrics, https = policy["spec"]["ingress"]
    assert metrics == {
        "from": [
            prometheus,
            {"podSelector": {"matchLabels": {
                k: v for k, v in test_pod["metadata"]["labels"].items()
                if k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                         "app.kubernetes.io/component")
            }}},
        ],
        "ports": [{"port": "metrics", "protocol": "TCP"}],
    }  # fmt: skip
    assert https == {"from": [prometheus], "ports": [{"port": "https", "protocol": "TCP"}]}
    # The policy's named ports are the ones the containers declare.
    declared = {p["name"] for c in containers(scheduler) for p in c["ports"]}
    assert {"metrics", "https"} == declared
    assert find(render(), "NetworkPolicy") == []  # off by default


def test_monitoring_is_gated_on_the_operator_api(render: Render) -> None:
    values = [CHART / "ci" / "monitoring-values.yaml"]
    without = render(values=values)
    assert find(without, "ServiceMonitor") == []
    assert find(without, "PrometheusRule") == []
    with_api = render(values=values, api_versions=[MONITORING_API])
    monitors = find(with_api, "ServiceMonitor")
    assert {m["metadata"]["labels"]["app.kubernetes.io/component"] for m in monitors} >= {
        "extender",
        "scheduler",
    }
    for m in monitors + find(with_api, "PrometheusRule"):
        assert m["metadata"]["labels"]["release"] == "monitoring"
    assert find(render(api_versions=[MONITORING_API]), "ServiceMonitor") == []  # off by default


def test_each_service_monitor_scrapes_one_service_on_a_port_it_has(render: Render) -> None:
    manifests = render(values=[CHART / "ci" / "monitoring-values.yaml"], api_versions=ALL_APIS)
    services = find(manifests, "Service")
    for monitor in find(manifests, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"].items()
        (service,) = [s for s in services if selector <= s["metadata"]["labels"].items()]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    extender = component(manifests, "ServiceMonitor", "extender")
    (endpoint,) = extender["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == (
        "metrics",
        "/metrics",
        "http",
    )
    assert "tlsConfig" not in endpoint
    service = one(manifests, "Service", "rel-scheduler-extender-extender")
    assert (
        service["spec"]["selector"] == scheduler_pod(manifests)["spec"]["selector"]["matchLabels"]
    )


def test_dashboards_one_configmap_each_with_the_sidecar_label(render: Render) -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert files
    manifests = render(
        values=[CHART / "ci" / "monitoring-values.yaml"],
        set_values=["dashboards.label=my_dashboards", "dashboards.labelValue=yes"],
    )
    maps = [m for m in find(manifests, "ConfigMap") if "my_dashboards" in m["metadata"]["labels"]]
    assert len(maps) == len(files)
    for m in maps:
        assert m["metadata"]["labels"]["my_dashboards"] == "yes"
        assert m["metadata"]["annotations"] == {"grafana_folder": "Scheduling"}
        ((key, body),) = m["data"].items()
        assert body.strip() == (CHART / "dashboards" / key).read_text().strip()
    assert not [
        m for m in find(render(), "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]


def test_an_acting_packer_is_refused_with_several_scheduler_replicas(
    helm: Path, render: Render
) -> None:
    from tests.unit.chart.conftest import run_helm, template_args

    acting = ["extender.packer.enabled=true", "extender.packer.dryRun=false"]
    result = run_helm(helm, *template_args(set_values=acting), check=False)
    assert result.returncode != 0
    assert "extender.packer.dryRun=false needs scheduler.replicas=1" in result.stderr
    single = render(set_values=[*acting, "scheduler.replicas=1"])
    assert env_of(extender_of(single))["SCHEDULER_EXTENDER_PACKER__DRY_RUN"] == "false"
    render(set_values=["extender.packer.enabled=true"])  # dry run: no reservations, any replicas


def test_several_schedulers_need_leader_election(helm: Path, render: Render) -> None:
    from tests.unit.chart.conftest import run_helm, template_args

    off = ["scheduler.leaderElection.enabled=false"]
    result = run_helm(helm, *template_args(set_values=off), check=False)
    assert result.returncode != 0
    assert "needs scheduler.replicas=1" in result.stderr
    config = scheduler_config(render(set_values=[*off, "scheduler.replicas=1"]))
    assert config["leaderElection"]["leaderElect"] is False
