"""The chart's KubeSchedulerConfiguration agrees with deploy/scheduler-config.yaml, and the real
kube-scheduler binary loads and validates it (including the extender's TLS client)."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart.conftest import CERT_MANAGER_API, CHART, REPO, Render, one, tool

DEPLOY = REPO / "deploy" / "scheduler-config.yaml"
# The release and namespace the deploy file's urlPrefix names.
RELEASE = NAMESPACE = "scheduler-extender"


def chart_config(render: Render, **kwargs: Any) -> dict[str, Any]:
    manifests = render(release=RELEASE, namespace=NAMESPACE, **kwargs)
    configmap = one(manifests, "ConfigMap", f"{RELEASE}-scheduler")
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["scheduler-config.yaml"])
    return config


def test_the_extender_entry_and_profile_equal_the_deploy_file(render: Render) -> None:
    deploy = yaml.safe_load(DEPLOY.read_text())
    chart = chart_config(render)
    assert chart["apiVersion"] == deploy["apiVersion"]
    assert chart["kind"] == deploy["kind"]
    assert chart["profiles"] == deploy["profiles"]
    assert chart["extenders"] == deploy["extenders"]


def test_only_the_lease_differs_from_the_deploy_file(render: Render) -> None:
    """The chart's scheduler elects on a Lease of its release, in its release's namespace."""
    deploy = yaml.safe_load(DEPLOY.read_text())
    chart = chart_config(render)
    differing = {k for k in set(chart) | set(deploy) if chart.get(k) != deploy.get(k)}
    assert differing <= {"leaderElection", "percentageOfNodesToScore"}
    assert chart["leaderElection"]["resourceName"] == f"{RELEASE}-scheduler"
    assert chart["leaderElection"]["resourceNamespace"] == NAMESPACE


def test_values_reach_the_extender_entry(render: Render) -> None:
    chart = chart_config(
        render,
        set_values=[
            "schedulerName=batch",
            "scheduler.extender.weight=9",
            "scheduler.extender.ignorable=false",
            "scheduler.extender.httpTimeout=30s",
            "scheduler.extender.nodeCacheCapable=false",
            "extender.urlPrefix=/x",
            "extender.port=9000",
        ],
        set_json=['scheduler.extender.managedResources=[{"name":"example.com/tpu"}]'],
    )
    (extender,) = chart["extenders"]
    assert chart["profiles"] == [{"schedulerName": "batch"}]
    assert extender == {
        "urlPrefix": "http://scheduler-extender.scheduler-extender.svc:9000/x",
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "bindVerb": "bind",
        "preemptVerb": "preempt",
        "weight": 9,
        "httpTimeout": "30s",
        "nodeCacheCapable": False,
        "ignorable": False,
        "managedResources": [{"name": "example.com/tpu"}],
        "enableHTTPS": False,
    }


def write_kubeconfig(path: Path) -> Path:
    """A kubeconfig pointing nowhere: validation never contacts the API server."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def write_certificates(directory: Path) -> dict[str, Path]:
    """A CA and a client certificate signed by it, as the scheduler's tlsConfig expects."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(name: str, key: Any, issuer: x509.Name, signer: Any, ca: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = cert("test-ca", ca_key, ca_name, ca_key, True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = cert("scheduler", client_key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    files = {
        "ca": (directory / "ca.crt", ca.public_bytes(pem)),
        "cert": (directory / "tls.crt", client.public_bytes(pem)),
        "key": (
            directory / "tls.key",
            client_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {k: path for k, (path, _) in files.items()}


def load_with_kube_scheduler(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """kube-scheduler --write-config-to: loads, defaults and validates the configuration, builds
    the scheduler (profiles, extender HTTP clients with their TLS files), writes the result, exits."""
    binary = tool("kubernetes", "kube-scheduler")
    config = {**config, "clientConnection": {"kubeconfig": str(write_kubeconfig(tmp_path / "kc"))}}
    source = tmp_path / "scheduler-config.yaml"
    source.write_text(yaml.safe_dump(config))
    written = tmp_path / "loaded.yaml"
    result = subprocess.run(
        [str(binary), f"--config={source}", f"--write-config-to={written}", "--secure-port=0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded: dict[str, Any] = yaml.safe_load(written.read_text())
    return loaded


def test_kube_scheduler_loads_the_default_config(render: Render, tmp_path: Path) -> None:
    loaded = load_with_kube_scheduler(chart_config(render), tmp_path)
    (extender,) = loaded["extenders"]
    assert (
        extender["urlPrefix"] == "http://scheduler-extender.scheduler-extender.svc:8888/scheduler"
    )
    assert extender["bindVerb"] == "bind"
    assert extender["preemptVerb"] == "preempt"
    assert extender["nodeCacheCapable"] is True
    assert [p["schedulerName"] for p in loaded["profiles"]] == ["gpu-scheduler"]
    assert loaded["leaderElection"]["resourceName"] == "scheduler-extender-scheduler"


def test_kube_scheduler_loads_the_tls_config(render: Render, tmp_path: Path) -> None:
    config = chart_config(
        render, values=[CHART / "ci" / "tls-values.yaml"], api_versions=[CERT_MANAGER_API]
    )
    files = write_certificates(tmp_path)
    tls = config["extenders"][0]["tlsConfig"]
    # The pod mounts the Secrets at these paths; here they point at the generated files.
    assert Path(tls["caFile"]).name == "ca.crt"
    assert Path(tls["certFile"]).name == "tls.crt"
    tls.update(caFile=str(files["ca"]), certFile=str(files["cert"]), keyFile=str(files["key"]))
    loaded = load_with_kube_scheduler(config, tmp_path)
    assert loaded["extenders"][0]["enableHTTPS"] is True
    assert (
        loaded["extenders"][0]["tlsConfig"]["serverName"]
        == "scheduler-extender.scheduler-extender.svc"
    )


def test_kube_scheduler_refuses_a_broken_config(render: Render, tmp_path: Path) -> None:
    """The check can fail: a zero weight is rejected by kube-scheduler's own validation."""
    config = chart_config(render)
    config["extenders"][0]["weight"] = 0
    with pytest.raises(AssertionError, match="positive weight"):
        load_with_kube_scheduler(config, tmp_path)
