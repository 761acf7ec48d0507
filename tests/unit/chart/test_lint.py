"""helm lint --strict and helm template with the default values and every ci/ values file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.chart.conftest import (
    CERT_MANAGER_API,
    CHART,
    CI_VALUES,
    MONITORING_API,
    Render,
    run_helm,
)


def test_the_ci_values_cover_the_required_scenarios() -> None:
    names = {p.name.removesuffix("-values.yaml") for p in CI_VALUES}
    assert {"minimal", "monitoring", "networkpolicy"} <= names
    # The standalone extender and its TLS setups are gone from the chart.
    assert not {n for n in names if n.startswith("tls")}


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "default")
def test_helm_lint_strict(helm: Path, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    result = run_helm(helm, *args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "default")
def test_helm_template_renders(render: Render, values: Path | None) -> None:
    manifests = render(
        values=[values] if values else [], api_versions=[MONITORING_API, CERT_MANAGER_API]
    )
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount"} <= kinds
    for m in manifests:
        assert m["apiVersion"], m
        assert m["metadata"]["name"], m


def test_an_unsupported_cluster_version_is_refused(helm: Path) -> None:
    from tests.unit.chart.conftest import template_args

    result = run_helm(helm, *template_args(kube_version="v1.28.9"), check=False)
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr
