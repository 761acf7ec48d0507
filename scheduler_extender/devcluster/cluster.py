"""The local control plane: etcd, kube-apiserver, kube-controller-manager, kwok,
kube-scheduler and (optionally) the scheduler-extender, as processes on 127.0.0.1.

``LocalCluster`` is a context manager::

    with LocalCluster(ClusterOptions(run_dir=Path(".cluster/dev"))) as cluster:
        cluster.kubectl("get", "nodes")

Every component listens on a free loopback port, logs to
``<run_dir>/logs/<component>.log`` and runs in a process group of its own;
leaving the ``with`` block (normally, by an exception or by Ctrl-C) stops them
all. The run directory also holds the PKI, etcd's data, the kubeconfig and the
rendered kube-scheduler configurations; it is wiped at the next start.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from kubernetes import client, config

from scheduler_extender.devcluster import dra, schedconfig
from scheduler_extender.devcluster.kubeconfig import write_kubeconfig
from scheduler_extender.devcluster.paths import kwok_dir
from scheduler_extender.devcluster.pki import Pki, create_pki
from scheduler_extender.devcluster.processes import (
    ManagedProcess,
    Started,
    free_port,
    wait_until,
)
from scheduler_extender.devcluster.tools import Tools, locate_tools

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MARKER = ".scheduler-extender-dev-cluster"  # a run dir we may wipe carries this file
ALWAYS_ALLOW = "/healthz,/readyz,/livez,/metrics"
KWOK_NODE_SELECTOR = "kwok.x-k8s.io/node=fake"  # the annotation of deploy/kwok templates
POD_CIDR = "10.244.0.0/16"  # fake pod IPs kwok writes into pod status; never dialled
SERVICE_CIDR = "10.96.0.0/16"


class RunDirBusyError(RuntimeError):
    """Another local cluster is running in the same run directory."""


@dataclass(frozen=True)
class ClusterOptions:
    """What ``LocalCluster.start`` brings up.

    ``extender``: start our extender (``scheduler-extender serve``).
    ``scheduler``: start kube-scheduler; it calls the extender when
    ``extender`` is true, and runs alone (the control configuration) otherwise.
    """

    run_dir: Path
    extender: bool = True
    scheduler: bool = True
    ignorable: bool | None = None  # None: as deploy/scheduler-config.yaml says
    extender_port: int | None = None  # None: a free port
    extender_env: Mapping[str, str] = field(default_factory=dict)
    extender_args: Sequence[str] = ()
    scheduler_overrides: Mapping[str, Any] = field(default_factory=dict)
    # kube-scheduler calls the extender for every pod (pods with DRA claims request no GPUs).
    every_pod: bool = False
    start_timeout: float = 90.0


@dataclass(frozen=True)
class ExtenderEndpoint:
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    @property
    def readyz_url(self) -> str:
        return f"{self.url}/readyz"


class LocalCluster(Started):
    """A running local control plane; see the module docstring."""

    def __init__(self, options: ClusterOptions, tools: Tools | None = None) -> None:
        self.options = options
        self.tools = tools or locate_tools()
        self.run_dir = options.run_dir.resolve()
        self.kubeconfig = self.run_dir / "kubeconfig"
        self.logs_dir = self.run_dir / "logs"
        self.startup_seconds: float | None = None
        self.base_scheduler_config = schedconfig.load_base()
        self.scheduler_name = schedconfig.scheduler_name(self.base_scheduler_config)
        self.extender_endpoint = ExtenderEndpoint(options.extender_port or free_port())
        self._components: dict[str, ManagedProcess] = {}
        self._lock_file: IO[str] | None = None
        self._pki: Pki | None = None
        self._apiserver_port = 0
        self._etcd_port = 0
        self._api: client.ApiClient | None = None
        self._scheduler_configs = 0

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        try:
            self._claim_run_dir()
            self._pki = create_pki(self.run_dir / "pki")
            self._start_etcd()
            self._start_apiserver()
            write_kubeconfig(self.kubeconfig, self.server, self._pki)
            self._start_controller_manager()
            self._start_kwok()
            self._wait_healthy("kube-controller-manager", self._https_ok, "/healthz")
            self._wait_healthy("kwok", self._http_ok, "/healthz")
            self._wait_for_default_service_account()
            if self.options.extender:
                self.start_extender(env=self.options.extender_env, args=self.options.extender_args)
            if self.options.scheduler:
                self.start_scheduler(
                    extender=self.options.extender,
                    ignorable=self.options.ignorable,
                    overrides=self.options.scheduler_overrides,
                    every_pod=self.options.every_pod,
                )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("local control plane ready in %.1f s (%s)", self.startup_seconds, self.run_dir)

    def stop(self) -> None:
        """Stops every component, newest first. Safe to call more than once."""
        if self._api is not None:
            self._api.close()
            self._api = None
        interrupted: BaseException | None = None
        for name in reversed(list(self._components)):
            try:
                self._stop_component(name)
            except BaseException as exc:  # e.g. a second Ctrl-C: stop the rest all the same
                interrupted = interrupted or exc
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
        if interrupted is not None:
            raise interrupted

    # -- what users of the cluster need --------------------------------------------
    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self._apiserver_port}"

    @property
    def logs(self) -> dict[str, Path]:
        """component -> log file, for every component started so far."""
        return {path.stem: path for path in sorted(self.logs_dir.glob("*.log"))}

    @property
    def extender_url(self) -> str:
        return self.extender_endpoint.url

    def running(self, component: str) -> bool:
        process = self._components.get(component)
        return process is not None and process.running()

    def pids(self) -> dict[str, int]:
        """component -> process id, for the components running now."""
        return {name: p.pid for name, p in self._components.items() if p.running()}

    def health_port(self, component: str) -> int | None:
        """Where a running component serves /healthz and /metrics (HTTPS for Kubernetes')."""
        process = self._components.get(component)
        return process.port if process is not None else None

    def check_alive(self) -> None:
        """Raises ComponentFailedError if a started component has exited."""
        for process in self._components.values():
            process.check_running()

    def api_client(self) -> client.ApiClient:
        """A shared kubernetes client for this cluster (closed by ``stop``)."""
        if self._api is None:
            self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api

    def kubectl(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 - the name subprocess uses
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster; raises with its stderr when ``check`` fails."""
        argv = [str(self.tools.kubectl), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, argv, output=result.stdout, stderr=result.stderr
            )
        return result

    # -- the extender and the scheduler, (re)startable -----------------------------
    def start_extender(
        self,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        port: int | None = None,
        ready_url: str | None = None,
        command: Sequence[str] | None = None,
    ) -> ExtenderEndpoint:
        """(Re)starts ``scheduler-extender serve`` and waits for its /readyz.

        ``port`` moves it to another port; a scheduler already running keeps
        calling the old address until ``start_scheduler`` is called again.
        ``ready_url`` is where to wait for readiness instead of the main port's
        /readyz (e.g. the plain probe port of an extender that requires mTLS).
        ``command`` runs another extender instead (a benchmark's baseline); it
        must serve the verbs and /readyz on the endpoint's port.
        """
        self.stop_extender()
        if port is not None:
            self.extender_endpoint = ExtenderEndpoint(port)
        endpoint = self.extender_endpoint
        argv = command or [
            sys.executable, "-m", "scheduler_extender.cli", "serve",
            "--kubeconfig", str(self.kubeconfig),
            "--host", LOOPBACK,
            "--port", str(endpoint.port),
            "--url-prefix", schedconfig.extender_path(self.base_scheduler_config),
            *args,
        ]  # fmt: skip
        full_env = {"SCHEDULER_EXTENDER_SCHEDULER_NAME": self.scheduler_name, **(env or {})}
        process = self._launch("extender", argv, env=full_env)
        wait_until(
            "the extender's /readyz (its watch cache synced)",
            lambda: self._http_status(ready_url or endpoint.readyz_url) == 200,
            timeout=self.options.start_timeout,
            process=process,
        )
        return endpoint

    @property
    def pki(self) -> Pki:
        return self._require_pki()

    def stop_extender(self) -> None:
        self._stop_component("extender")

    def start_scheduler(
        self,
        *,
        extender: bool = True,
        ignorable: bool | None = None,
        overrides: Mapping[str, Any] | None = None,
        extender_tls: Mapping[str, Any] | None = None,
        every_pod: bool = False,
    ) -> Path:
        """(Re)starts kube-scheduler; returns the configuration file it runs with.

        ``extender=False`` is the control configuration: the same profile
        without the extender. The extender need not be running: with
        ``ignorable=False`` GPU pods then stay Pending until it is back.
        ``every_pod``: the extender is called for pods without GPUs too.
        """
        self.stop_scheduler()
        rendered = schedconfig.render_local(
            self.base_scheduler_config,
            kubeconfig=self.kubeconfig,
            extender_url=self.extender_url if extender else None,
            ignorable=ignorable,
            overrides=overrides,
            extender_tls=extender_tls,
            every_pod=every_pod,
        )
        self._scheduler_configs += 1
        path = schedconfig.write(
            rendered, self.run_dir / f"scheduler-config-{self._scheduler_configs}.yaml"
        )
        port = free_port()
        argv = [
            str(self.tools.kube_scheduler),
            f"--config={path}",
            *self._secure_serving_flags(port),
            f"--feature-gates={dra.FEATURE_GATES}",
            "--v=2",
        ]
        process = self._launch("kube-scheduler", argv, port=port)
        self._wait_healthy("kube-scheduler", self._https_ok, "/readyz", process=process)
        return path

    def stop_scheduler(self) -> None:
        self._stop_component("kube-scheduler")

    # -- components ----------------------------------------------------------------
    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        data = self.run_dir / "etcd-data"
        argv = [
            str(self.tools.etcd),
            "--name=local",
            f"--data-dir={data}",
            f"--listen-client-urls=http://{LOOPBACK}:{client_port}",
            f"--advertise-client-urls=http://{LOOPBACK}:{client_port}",
            f"--listen-peer-urls=http://{LOOPBACK}:{peer_port}",
            f"--initial-advertise-peer-urls=http://{LOOPBACK}:{peer_port}",
            f"--initial-cluster=local=http://{LOOPBACK}:{peer_port}",
            "--auto-compaction-retention=1",
            "--quota-backend-bytes=8589934592",
            # The data dies with the cluster: durability buys nothing here.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        process = self._launch("etcd", argv, port=client_port)
        wait_until(
            "etcd /health",
            lambda: self._etcd_healthy(client_port),
            timeout=self.options.start_timeout,
            process=process,
        )
        self._etcd_port = client_port

    def restart_apiserver(self, downtime: float = 0.0) -> None:
        """Stops kube-apiserver and starts it again on the same port (fault injection).

        Every client keeps its address; watches break and must resume or relist.
        """
        port = self._apiserver_port
        self._stop_component("kube-apiserver")
        time.sleep(downtime)
        self._start_apiserver(port=port)

    def _start_apiserver(self, port: int | None = None) -> None:
        pki = self._require_pki()
        port = port or free_port()
        argv = [
            str(self.tools.kube_apiserver),
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--etcd-servers=http://{LOOPBACK}:{self._etcd_port}",
            f"--cert-dir={pki.ca_cert.parent}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # There is no real endpoint for the kubernetes Service to point at.
            "--endpoint-reconciler-type=none",
            # New nodes would start tainted not-ready until the node controller
            # sees them Ready: ~3 minutes for 1000 fake nodes that kwok makes
            # Ready at once. The controller still taints a node that stops being Ready.
            "--disable-admission-plugins=TaintNodesByCondition",
            # DRA: shares (consumable capacity), partitions, extended resources (devcluster/dra.py).
            f"--feature-gates={dra.FEATURE_GATES}",
        ]
        self._apiserver_port = port
        process = self._launch("kube-apiserver", argv, port=port)
        wait_until(
            "kube-apiserver /readyz",
            lambda: self._apiserver_ready(),
            timeout=self.options.start_timeout,
            interval=0.25,
            process=process,
        )

    def _start_controller_manager(self) -> None:
        pki = self._require_pki()
        port = free_port()
        argv = [
            str(self.tools.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig}",
            *self._secure_serving_flags(port),
            "--leader-elect=false",
            f"--root-ca-file={pki.ca_cert}",
            f"--service-account-private-key-file={pki.service_account_key}",
            "--use-service-account-credentials=false",
            # As kwokctl: notice a fake node whose lease stops within 40 s.
            "--node-monitor-period=5s",
            "--node-monitor-grace-period=40s",
            # Its client defaults (20 qps) take a minute to untaint 1000 new nodes.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            f"--feature-gates={dra.FEATURE_GATES}",
        ]
        self._launch("kube-controller-manager", argv, port=port)

    def _start_kwok(self) -> None:
        port = free_port()
        argv = [
            str(self.tools.kwok),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={kwok_dir() / 'stages.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_SELECTOR}",
            f"--cidr={POD_CIDR}",
            f"--node-ip={LOOPBACK}",
            "--node-lease-duration-seconds=40",
            f"--server-address={LOOPBACK}:{port}",
            f"--node-port={port}",
        ]
        self._launch("kwok", argv, port=port)

    def _secure_serving_flags(self, port: int) -> list[str]:
        return [
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--authorization-always-allow-paths={ALWAYS_ALLOW}",
        ]

    def _launch(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.logs_dir / f"{name}.log", env=env, port=port)
        self._components[name] = process
        log.debug("started %s (pid %d)", name, process.pid)
        return process

    def _stop_component(self, name: str) -> None:
        process = self._components.pop(name, None)
        if process is not None:
            process.stop()

    # -- health --------------------------------------------------------------------
    def _require_pki(self) -> Pki:
        if self._pki is None:
            raise RuntimeError("the PKI is created by start()")
        return self._pki

    def _admin_tls(self) -> ssl.SSLContext:
        pki = self._require_pki()
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        return context

    @staticmethod
    def _http_status(url: str, verify: ssl.SSLContext | bool = True) -> int | None:
        try:
            return httpx.get(url, timeout=2.0, verify=verify).status_code
        except httpx.HTTPError:
            return None

    def _etcd_healthy(self, port: int) -> bool:
        try:
            reply = httpx.get(f"http://{LOOPBACK}:{port}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200 and reply.json().get("health") == "true"

    def _apiserver_ready(self) -> bool:
        return self._http_status(f"{self.server}/readyz", self._admin_tls()) == 200

    def _https_ok(self, port: int, path: str) -> bool:
        # Components serve a self-signed certificate of their own: nothing to verify against.
        return self._http_status(f"https://{LOOPBACK}:{port}{path}", verify=False) == 200

    def _http_ok(self, port: int, path: str) -> bool:
        return self._http_status(f"http://{LOOPBACK}:{port}{path}") == 200

    def _wait_healthy(
        self,
        name: str,
        probe: Callable[[int, str], bool],
        path: str,
        *,
        process: ManagedProcess | None = None,
    ) -> None:
        process = process or self._components[name]
        port = process.port
        if port is None:
            raise RuntimeError(f"{name} was started without a port to probe")
        wait_until(
            f"{name} {path}",
            lambda: probe(port, path),
            timeout=self.options.start_timeout,
            process=process,
        )

    def _wait_for_default_service_account(self) -> None:
        """Pods are refused until kube-controller-manager made the default SA."""
        core = client.CoreV1Api(self.api_client())

        def exists() -> bool:
            try:
                core.read_namespaced_service_account("default", "default")
            except client.ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        wait_until(
            "the default ServiceAccount",
            exists,
            timeout=self.options.start_timeout,
            interval=0.25,
            process=self._components["kube-controller-manager"],
        )

    # -- run directory ------------------------------------------------------------------
    def _claim_run_dir(self) -> None:
        """Locks the run dir for this cluster and clears what a previous run left."""
        run_dir = self.run_dir
        if run_dir.exists() and any(run_dir.iterdir()) and not (run_dir / MARKER).exists():
            raise RunDirBusyError(
                f"{run_dir} is not empty and was not made by the local control plane; "
                "choose another run directory"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = (run_dir / ".lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RunDirBusyError(
                f"another local control plane is running in {run_dir}; stop it first "
                "or choose another run directory"
            ) from None
        self._lock_file = lock
        for entry in run_dir.iterdir():
            if entry.name in (".lock", MARKER):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        (run_dir / MARKER).touch()
        self.logs_dir.mkdir()
