"""``scheduler-extender controller`` (the AgentAutoscaler controller) as a process beside the
local control plane, for the demo and the e2e tests."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from scheduler_extender.devcluster.processes import ManagedProcess, free_port, wait_until


def start_controller(
    kubeconfig: Path,
    prometheus_url: str,
    log: Path,
    *,
    port: int | None = None,
    namespace: str | None = None,
    lease: tuple[str, str, str] | None = None,  # (namespace, name, identity); None: no election
    sync_interval: str = "2s",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> ManagedProcess:
    """Starts the controller with /metrics and /readyz on 127.0.0.1:``port`` (default: a free
    port, then ``process.port``) and waits for /readyz."""
    port = port or free_port()
    argv = [
        sys.executable, "-m", "scheduler_extender.cli", "controller",
        "--kubeconfig", str(kubeconfig), "--prometheus-url", prometheus_url,
        "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
        "--sync-interval", sync_interval,
    ]  # fmt: skip
    if namespace is not None:
        argv += ["--namespace", namespace]
    if lease is None:
        argv.append("--no-leader-elect")
    else:
        lease_namespace, lease_name, identity = lease
        argv += ["--lease-namespace", lease_namespace, "--lease-name", lease_name,
                 "--identity", identity]  # fmt: skip
    process = ManagedProcess("controller", argv, log, env=env, port=port)
    try:
        wait_until(
            "the controller's /readyz",
            lambda: _ok(f"http://127.0.0.1:{port}/readyz"),
            timeout=timeout,
            process=process,
        )
    except BaseException:
        process.stop()
        raise
    return process


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
