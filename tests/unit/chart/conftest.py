"""Rendering the Helm chart with the real helm binary (built by `make tools`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler_extender.devcluster.tools import HOW_TO_BUILD, tool_dirs

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm" / "scheduler-extender"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# The cluster version the chart is rendered for: the one the local control plane runs.
KUBE_VERSION = "v1.36.4"
# APIs the optional templates are gated on.
MONITORING_API = "monitoring.coreos.com/v1"
CERT_MANAGER_API = "cert-manager.io/v1"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def tool(name: str, binary: str) -> Path:
    version, directory = tool_dirs()[name]
    path = directory / binary
    if not path.is_file():
        pytest.fail(f"{binary} {version} is missing at {path}: {HOW_TO_BUILD}")
    return path


@pytest.fixture(scope="session")
def helm() -> Path:
    return tool("helm", "helm")


@pytest.fixture(scope="session")
def promtool() -> Path:
    return tool("prometheus", "promtool")


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def template_args(
    *,
    release: str = "rel",
    namespace: str = "ns",
    values: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    set_json: Sequence[str] = (),
    api_versions: Sequence[str] = (),
    kube_version: str = KUBE_VERSION,
    show_only: str | None = None,
    chart: Path = CHART,
) -> list[str]:
    args = ["template", release, str(chart), "--namespace", namespace]
    args += ["--kube-version", kube_version]
    for path in values:
        args += ["--values", str(path)]
    for item in set_values:
        args += ["--set", item]
    for item in set_json:
        args += ["--set-json", item]
    for api in api_versions:
        args += ["--api-versions", api]
    if show_only:
        args += ["--show-only", show_only]
    return args


def documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """helm template, parsed; memoised because helm takes ~100 ms per call."""
    cache: dict[tuple[str, ...], list[Manifest]] = {}

    def _render(**kwargs: Any) -> list[Manifest]:
        args = tuple(template_args(**kwargs))
        if args not in cache:
            cache[args] = documents(run_helm(helm, *args).stdout)
        return [dict(doc) for doc in cache[args]]

    return _render


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def component(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    """The object of ``kind`` whose app.kubernetes.io/component label is ``name``."""
    found = [
        m
        for m in find(manifests, kind)
        if m["metadata"]["labels"].get("app.kubernetes.io/component") == name
    ]
    assert len(found) == 1, f"expected one {kind} of component {name}, got {len(found)}"
    return found[0]


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    spec = (
        manifest["spec"]["template"]["spec"] if "template" in manifest["spec"] else manifest["spec"]
    )
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}
