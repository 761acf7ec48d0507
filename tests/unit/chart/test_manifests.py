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


def test_the_extender_defaults(render: Render) -> None:
    manifests = render()
    deployment = component(manifests, "Deployment", "extender")
    assert deployment["spec"]["replicas"] == 2
    (container,) = containers(deployment)
    assert container["args"] == ["serve"]
    assert container["image"] == "scheduler-extender:0.1.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    env = env_of(container)
    assert env["SCHEDULER_EXTENDER_HOST"] == "0.0.0.0"
    assert env["SCHEDULER_EXTENDER_PORT"] == "8888"
    assert env["SCHEDULER_EXTENDER_GPU_RESOURCE"] == "nvidia.com/gpu"
    assert "SCHEDULER_EXTENDER_KUBECONFIG" not in env  # in-cluster configuration
    spread = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = spread["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == (deployment["spec"]["selector"]["matchLabels"])
    )
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_hard_anti_affinity_and_single_replica_without_pdb(render: Render) -> None:
    hard = render(set_values=["extender.podAntiAffinity=hard"])
    spec = component(hard, "Deployment", "extender")["spec"]["template"]["spec"]
    assert spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    minimal = render(values=[CHART / "ci" / "minimal-values.yaml"])
    assert find(minimal, "PodDisruptionBudget") == []
    assert (
        "affinity" not in component(minimal, "Deployment", "extender")["spec"]["template"]["spec"]
    )


def test_service_selects_the_extender_pods(render: Render) -> None:
    manifests = render()
    service = one(manifests, "Service", "rel-scheduler-extender")
    deployment = component(manifests, "Deployment", "extender")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8888


def test_extender_settings_become_environment_variables(render: Render) -> None:
    manifests = render(
        set_values=["extender.settings.maxAgentReplicasPerNode=2"],
        set_json=['extender.settings.scoreWeights={"gpu_binpack":2}'],
    )
    env = env_of(containers(component(manifests, "Deployment", "extender"))[0])
    assert env["SCHEDULER_EXTENDER_MAX_AGENT_REPLICAS_PER_NODE"] == "2"
    assert yaml.safe_load(env["SCHEDULER_EXTENDER_SCORE_WEIGHTS"]) == {"gpu_binpack": 2}


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
            "extender.replicas=1",
            "extender.packer.enabled=true",
            "extender.packer.dryRun=false",
            "extender.packer.timeLimit=2500ms",
            "extender.packer.evictionsPerMinute=4",
        ],
        set_json=['extender.packer.excludedNamespaces=["kube-system","batch"]'],
    )
    (container,) = containers(component(manifests, "Deployment", "extender"))
    for name, value in env_of(container).items():
        if name.startswith("SCHEDULER_EXTENDER_PACKER__"):
            monkeypatch.setenv(name, value)
    (identity,) = [
        e for e in container["env"] if e["name"] == "SCHEDULER_EXTENDER_PACKER__IDENTITY"
    ]
    assert identity["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    monkeypatch.delenv("SCHEDULER_EXTENDER_PACKER__IDENTITY")
    packer = Settings().packer
    assert packer.enabled is True
    assert packer.dry_run is False
    assert packer.time_limit == 2.5
    assert packer.evictions_per_minute == 4
    assert packer.excluded_namespaces == ["kube-system", "batch"]
    assert packer.lease_name == "rel-scheduler-extender-extender"


def test_the_scheduler_runs_the_cluster_version_with_its_config(render: Render) -> None:
    manifests = render()
    deployment = component(manifests, "Deployment", "scheduler")
    (container,) = containers(deployment)
    assert container["image"] == "registry.k8s.io/kube-scheduler:v1.36.4"
    assert "--config=/etc/kubernetes/scheduler/scheduler-config.yaml" in container["command"]
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    config = one(manifests, "ConfigMap", "rel-scheduler-extender-scheduler")
    assert {"name": "config", "configMap": {"name": config["metadata"]["name"]}} in volumes
    # A vendor build's version string still picks the upstream image of the same release.
    vendor = render(kube_version="v1.35.2-eks-1234567")
    (container,) = containers(component(vendor, "Deployment", "scheduler"))
    assert container["image"] == "registry.k8s.io/kube-scheduler:v1.35.2"


def test_the_scheduler_rolls_when_its_config_changes(render: Render) -> None:
    def checksum(manifests: list[Manifest]) -> str:
        deployment = component(manifests, "Deployment", "scheduler")
        annotation: str = deployment["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return annotation

    assert checksum(render()) != checksum(render(set_values=["scheduler.extender.weight=7"]))


def test_helm_test_hook_calls_readyz_through_the_service(render: Render) -> None:
    manifests = render()
    pod = one(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = " ".join(pod["spec"]["containers"][0]["command"])
    assert "http://rel-scheduler-extender.ns.svc:8888/readyz" in command
    assert find(render(set_values=["tests.enabled=false"]), "Pod") == []


def volume_secrets(workload: Manifest) -> dict[str, str]:
    spec = (
        workload["spec"]["template"]["spec"] if "template" in workload["spec"] else workload["spec"]
    )
    return {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}


def test_tls_with_client_certificates(render: Render) -> None:
    manifests = render(values=[CHART / "ci" / "tls-values.yaml"], api_versions=[CERT_MANAGER_API])
    server, client = find(manifests, "Certificate")
    assert server["spec"]["secretName"] == "rel-scheduler-extender-extender-tls"
    assert "rel-scheduler-extender.ns.svc" in server["spec"]["dnsNames"]
    assert "client auth" in client["spec"]["usages"]

    extender = component(manifests, "Deployment", "extender")
    (container,) = containers(extender)
    env = env_of(container)
    assert env["SCHEDULER_EXTENDER_TLS_CERT_FILE"].endswith("/tls.crt")
    assert env["SCHEDULER_EXTENDER_TLS_CLIENT_CA_FILE"].endswith("/ca.crt")
    assert volume_secrets(extender) == {"tls": server["spec"]["secretName"]}
    assert (
        "client auth" not in server["spec"]["usages"]
    )  # nothing presents the server's certificate

    scheduler = component(manifests, "Deployment", "scheduler")
    assert set(volume_secrets(scheduler).values()) == {
        server["spec"]["secretName"],
        client["spec"]["secretName"],
    }
    config = yaml.safe_load(
        one(manifests, "ConfigMap", "rel-scheduler-extender-scheduler")["data"][
            "scheduler-config.yaml"
        ]
    )
    (ext,) = config["extenders"]
    assert ext["urlPrefix"] == "https://rel-scheduler-extender.ns.svc:8888/scheduler"
    assert ext["enableHTTPS"] is True
    assert ext["tlsConfig"]["serverName"] == "rel-scheduler-extender.ns.svc"
    assert set(ext["tlsConfig"]) == {"serverName", "caFile", "certFile", "keyFile"}

    test_pod = one(manifests, "Pod")
    assert "load_cert_chain" in test_pod["spec"]["containers"][0]["command"][-1]


def test_tls_from_an_existing_secret(render: Render) -> None:
    manifests = render(values=[CHART / "ci" / "tls-secret-values.yaml"])
    assert find(manifests, "Certificate") == []
    (container,) = containers(component(manifests, "Deployment", "extender"))
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert volume_secrets(component(manifests, "Deployment", "extender")) == {
        "tls": "extender-serving-tls"
    }


CLIENT_AUTH = CHART / "ci" / "tls-client-auth-values.yaml"


def probes_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def service_ports(manifests: list[Manifest]) -> dict[str, tuple[int, str]]:
    service = one(manifests, "Service", "rel-scheduler-extender")
    return {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}


@pytest.mark.parametrize(
    "values",
    [CLIENT_AUTH, CHART / "ci" / "tls-values.yaml"],
    ids=["existing-secrets", "cert-manager"],
)
def test_client_certificates_move_probes_to_the_plain_http_probes_port(
    render: Render, values: Path
) -> None:
    """httpGet probes cannot present a client certificate: they use the probes port instead."""
    manifests = render(values=[values], api_versions=[CERT_MANAGER_API])
    (container,) = containers(component(manifests, "Deployment", "extender"))
    assert env_of(container)["SCHEDULER_EXTENDER_PROBE_PORT"] == "8081"
    assert container_ports(container) == {"https": 8888, "probes": 8081}
    assert probes_of(container) == {
        "readinessProbe": {"path": "/readyz", "port": "probes", "scheme": "HTTP"},
        "livenessProbe": {"path": "/healthz", "port": "probes", "scheme": "HTTP"},
    }
    assert service_ports(manifests) == {"https": (8888, "https"), "probes": (8081, "probes")}


@pytest.mark.parametrize(
    "values",
    [[], [CHART / "ci" / "tls-secret-values.yaml"]],
    ids=["http", "tls-without-client-certificates"],
)
def test_without_client_certificates_probes_use_the_extender_port(
    render: Render, values: list[Path]
) -> None:
    manifests = render(values=values)
    (container,) = containers(component(manifests, "Deployment", "extender"))
    scheme = "https" if values else "http"
    assert "SCHEDULER_EXTENDER_PROBE_PORT" not in env_of(container)
    assert container_ports(container) == {scheme: 8888}
    for probe in probes_of(container).values():
        assert (probe["port"], probe["scheme"]) == (scheme, scheme.upper())
    assert service_ports(manifests) == {scheme: (8888, scheme)}


def test_the_probe_port_follows_its_value_and_must_differ_from_the_extender_port(
    render: Render, helm: Any
) -> None:
    from tests.unit.chart.conftest import run_helm, template_args

    manifests = render(values=[CLIENT_AUTH], set_values=["extender.probePort=9100"])
    (container,) = containers(component(manifests, "Deployment", "extender"))
    assert env_of(container)["SCHEDULER_EXTENDER_PROBE_PORT"] == "9100"
    assert container_ports(container)["probes"] == 9100
    assert service_ports(manifests)["probes"] == (9100, "probes")

    clash = template_args(values=[CLIENT_AUTH], set_values=["extender.probePort=8888"])
    result = run_helm(helm, *clash, check=False)
    assert result.returncode != 0
    assert "extender.probePort must differ from extender.port" in result.stderr
    # Without client certificates the probe port is unused, so it cannot clash.
    render(set_values=["extender.probePort=8888"])


def test_the_service_reads_the_probe_port_the_chart_sets(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler_extender.config import Settings

    (container,) = containers(component(render(values=[CLIENT_AUTH]), "Deployment", "extender"))
    monkeypatch.setenv(
        "SCHEDULER_EXTENDER_PROBE_PORT", env_of(container)["SCHEDULER_EXTENDER_PROBE_PORT"]
    )
    assert Settings().probe_port == container_ports(container)["probes"]


def test_the_probe_port_serves_every_path_the_chart_asks_of_it(render: Render) -> None:
    """The paths of the httpGet probes and of the ServiceMonitor exist on the service's probe app."""
    from fastapi.testclient import TestClient

    from scheduler_extender.adapters.metrics import Metrics
    from scheduler_extender.api.app import create_probe_app

    manifests = render(values=[CLIENT_AUTH], api_versions=[MONITORING_API])
    (container,) = containers(component(manifests, "Deployment", "extender"))
    (endpoint,) = component(manifests, "ServiceMonitor", "extender")["spec"]["endpoints"]
    paths = {probe["path"] for probe in probes_of(container).values()} | {endpoint["path"]}
    assert paths == {"/healthz", "/readyz", "/metrics"}
    with TestClient(create_probe_app(Metrics(), {})) as client:
        for path in sorted(paths):
            assert client.get(path).status_code == 200, path


def test_cert_manager_is_required_when_asked_for(helm: Any) -> None:
    from tests.unit.chart.conftest import run_helm, template_args

    args = template_args(values=[CHART / "ci" / "tls-values.yaml"])
    result = run_helm(helm, *args, check=False)
    assert result.returncode != 0
    assert "cert-manager" in result.stderr


def test_network_policy_admits_only_the_scheduler_prometheus_and_the_test(render: Render) -> None:
    manifests = render(values=[CHART / "ci" / "networkpolicy-values.yaml"])
    policy = one(manifests, "NetworkPolicy")
    extender = component(manifests, "Deployment", "extender")
    scheduler = component(manifests, "Deployment", "scheduler")
    assert (
        policy["spec"]["podSelector"]["matchLabels"] == extender["spec"]["selector"]["matchLabels"]
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    peers = rule["from"]
    assert {"podSelector": {"matchLabels": scheduler["spec"]["selector"]["matchLabels"]}} in peers
    prometheus = [p for p in peers if "namespaceSelector" in p]
    assert prometheus == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    assert len(peers) == 3  # scheduler, the helm test pod, Prometheus
    assert find(render(), "NetworkPolicy") == []  # off by default


def test_with_client_certificates_prometheus_may_reach_only_the_probes_port(
    render: Render,
) -> None:
    manifests = render(values=[CHART / "ci" / "networkpolicy-values.yaml", CLIENT_AUTH])
    scheduler = component(manifests, "Deployment", "scheduler")
    extender, prometheus = one(manifests, "NetworkPolicy")["spec"]["ingress"]
    assert extender["ports"] == [{"port": "https", "protocol": "TCP"}]
    assert {"podSelector": {"matchLabels": scheduler["spec"]["selector"]["matchLabels"]}} in (
        extender["from"]
    )
    assert not [p for p in extender["from"] if "namespaceSelector" in p]
    assert prometheus == {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ],
        "ports": [{"port": "probes", "protocol": "TCP"}],
    }


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


@pytest.mark.parametrize(
    ("tls", "port", "scheme"),
    [
        ("tls-secret-values.yaml", "https", "https"),
        ("tls-client-auth-values.yaml", "probes", "http"),
    ],
    ids=["tls", "client-certificates"],
)
def test_service_monitor_scrapes_a_port_it_can_reach(
    render: Render, tls: str, port: str, scheme: str
) -> None:
    manifests = render(
        values=[CHART / "ci" / "monitoring-values.yaml", CHART / "ci" / tls],
        api_versions=ALL_APIS,
    )
    monitor = component(manifests, "ServiceMonitor", "extender")
    service = one(manifests, "Service", "rel-scheduler-extender")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port
    assert port in {p["name"] for p in service["spec"]["ports"]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert endpoint["scheme"] == scheme
    if scheme == "https":
        assert endpoint["tlsConfig"]["ca"]["secret"]["name"] == "extender-serving-tls"
        assert endpoint["tlsConfig"]["serverName"] == "rel-scheduler-extender.ns.svc"
    else:  # Prometheus needs no client certificate on the plain-HTTP probes port.
        assert "tlsConfig" not in endpoint


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


def test_an_acting_packer_is_refused_with_several_extender_replicas(
    helm: Path, render: Render
) -> None:
    from tests.unit.chart.conftest import run_helm, template_args

    acting = ["extender.packer.enabled=true", "extender.packer.dryRun=false"]
    result = run_helm(helm, *template_args(set_values=acting), check=False)
    assert result.returncode != 0
    assert "needs extender.replicas=1" in result.stderr
    render(set_values=[*acting, "extender.replicas=1"])
    render(set_values=["extender.packer.enabled=true"])  # dry run: no reservations, any replicas
