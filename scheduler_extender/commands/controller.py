"""``scheduler-extender controller``: the AgentAutoscaler controller.

Leader-elected through a Lease; the leader lists AgentAutoscalers every
``sync_interval`` and whenever one changes (a watch wakes it), and scales
their targets ahead of each agent's forecast load. ``--with-extender`` runs
the extender service (``serve``) in the same process.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client
from pydantic import ValidationError

from scheduler_extender.adapters.autoscaler.conflicts import KubeHpaConflicts
from scheduler_extender.adapters.autoscaler.events import KubeEventRecorder
from scheduler_extender.adapters.autoscaler.forecast import ModelLoadForecaster
from scheduler_extender.adapters.autoscaler.metrics import AutoscalerMetrics
from scheduler_extender.adapters.autoscaler.scale import KubeScaleClient
from scheduler_extender.adapters.autoscaler.store import AutoscalerWatch, KubeAutoscalerStore
from scheduler_extender.adapters.kube.leader import (
    LeaderElector,
    LeaseConfig,
    Unelected,
    leadership,
)
from scheduler_extender.adapters.prometheus.forecasting import ForecastService
from scheduler_extender.adapters.prometheus.wiring import forecast_service
from scheduler_extender.api.health import ProbeServer
from scheduler_extender.commands import serve
from scheduler_extender.commands.common import fail, kube_client
from scheduler_extender.commands.runnables import Manager
from scheduler_extender.config import Settings
from scheduler_extender.service.autoscaler import AutoscalerController, BudgetConfig

log = logging.getLogger(__name__)

FLAGS = ["kubeconfig", "host", "port"]


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "controller",
        help="run the AgentAutoscaler controller (predictive replica scaling)",
        description="Scale each AgentAutoscaler's target ahead of its agent's forecast load. "
        "Settings can also come from SCHEDULER_EXTENDER_CONTROLLER__<FIELD> and "
        "SCHEDULER_EXTENDER_PROMETHEUS__<FIELD> environment variables; flags win.",
    )
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster config)")
    p.add_argument("--prometheus-url", dest="prometheus_url", metavar="URL",
                   help="Prometheus to read request rates from (required)")  # fmt: skip
    p.add_argument("--sync-interval", dest="sync_interval", metavar="DURATION",
                   help="between reconcile passes, e.g. 15s (default 15s)")  # fmt: skip
    p.add_argument("--namespace", help="only AgentAutoscalers of this namespace (default: all)")
    p.add_argument("--metrics-host", dest="metrics_host",
                   help="address of /metrics, /healthz, /readyz (default 127.0.0.1)")  # fmt: skip
    p.add_argument("--metrics-port", dest="metrics_port", type=int,
                   help="port of /metrics, /healthz, /readyz (default 8080)")  # fmt: skip
    p.add_argument("--no-leader-elect", dest="leader_elect", action="store_false", default=None,
                   help="act without a Lease (only when exactly one controller runs)")  # fmt: skip
    p.add_argument("--lease-name", dest="lease_name", help="the leader-election Lease")
    p.add_argument("--lease-namespace", dest="lease_namespace",
                   help="namespace of the Lease (default: the pod's, else default)")  # fmt: skip
    p.add_argument("--identity", help="this candidate's name in the Lease (default: host + random)")
    p.add_argument("--gpu-budget", dest="gpu_budget", type=int, metavar="GPUS",
                   help="GPUs all autoscaled agents share (default: no budget)")  # fmt: skip
    p.add_argument("--namespace-gpu-budget", dest="namespace_gpu_budgets", action="append",
                   metavar="NAMESPACE=GPUS", help="GPUs the agents of one namespace share "
                   "(repeatable)")  # fmt: skip
    p.add_argument("--with-extender", dest="with_extender", action="store_true", default=None,
                   help="also serve the extender in this process (as 'serve' does)")  # fmt: skip
    p.add_argument("--host", help="with --with-extender: the extender's address")
    p.add_argument("--port", type=int, help="with --with-extender: the extender's port")
    p.set_defaults(run=run, settings_fields=FLAGS)


CONTROLLER_FLAGS = ("sync_interval", "namespace", "metrics_host", "metrics_port", "leader_elect",
                    "lease_name", "lease_namespace", "identity", "gpu_budget", "with_extender")  # fmt: skip


def effective_settings(args: argparse.Namespace) -> Settings:
    """``args.settings`` with the controller's nested flags applied and validated."""
    settings: Settings = args.settings
    nested: dict[str, Any] = {
        name: getattr(args, name) for name in CONTROLLER_FLAGS if getattr(args, name) is not None
    }
    if args.namespace_gpu_budgets:
        nested["namespace_gpu_budgets"] = dict(_budget(item) for item in args.namespace_gpu_budgets)
    prometheus = {} if args.prometheus_url is None else {"url": args.prometheus_url}
    if not nested and not prometheus:
        return settings
    flat = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    try:
        return Settings(
            **flat, controller=nested, prometheus=prometheus, log_level=settings.log_level,
            log_format=settings.log_format,
        )  # fmt: skip
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid settings: {problems}")


def _budget(item: str) -> tuple[str, str]:
    namespace, sep, gpus = item.partition("=")
    if not sep or not namespace:
        fail(f"--namespace-gpu-budget {item!r}: expected NAMESPACE=GPUS")
    return namespace, gpus


@dataclass
class Controller:
    """Everything ``run`` starts and stops."""

    controller: AutoscalerController
    watch: AutoscalerWatch
    metrics: AutoscalerMetrics
    interval: float
    forecasts: ForecastService  # shared with the extender under --with-extender
    leadership: LeaderElector | Unelected | None = None  # who runs ``lead``; set by ``build``

    def lead(self, term: threading.Event) -> None:
        """One leader term: watch and reconcile until it ends."""
        self.watch.start()
        try:
            self.controller.run(term, self.interval)
        finally:
            self.watch.stop()

    @property
    def leading(self) -> bool:
        return self.leadership is not None and self.leadership.leading

    def start(self) -> None:
        assert self.leadership is not None, "built by build()"
        self.leadership.start()

    def stop(self) -> None:
        if self.leadership is not None:
            self.leadership.stop()
        self.forecasts.close()

    def live(self) -> tuple[bool, dict[str, Any]]:
        """Alive unless the leader's loop has stopped passing."""
        last = self.controller.last_pass
        age = None if last is None else time.time() - last
        stuck = self.leading and age is not None and age > max(3 * self.interval, 60.0)
        return not stuck, {"leader": self.leading, "last_pass_age_seconds": age}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """A standby is ready; a leader once it has completed a pass."""
        alive, detail = self.live()
        passed = self.controller.last_pass is not None
        return alive and (passed or not self.leading), detail


def build(settings: Settings, api: client.ApiClient) -> Controller:
    cfg = settings.controller
    lease = LeaseConfig.of(cfg)
    metrics = AutoscalerMetrics()
    store = KubeAutoscalerStore(api, namespace=cfg.namespace, timeout=cfg.request_timeout)
    forecasts = forecast_service(settings.prometheus)
    forecaster = ModelLoadForecaster(forecasts, refresh=cfg.forecast_refresh)
    controller = AutoscalerController(
        store=store,
        scales=KubeScaleClient(
            api, gpu_resource=settings.gpu_resource, timeout=cfg.request_timeout
        ),
        conflicts=KubeHpaConflicts(api, timeout=cfg.request_timeout),
        events=KubeEventRecorder(api, instance=lease.identity),
        forecaster=forecaster,
        metrics=metrics,
        budgets=BudgetConfig(cfg.gpu_budget, dict(cfg.namespace_gpu_budgets)),
        # Checked before every scale write: a leader that lost its Lease stops at once.
        may_act=lambda: runner.leading,
    )
    runner = Controller(
        controller,
        AutoscalerWatch(store, controller.kick),
        metrics,
        cfg.sync_interval,
        forecasts,
    )
    runner.leadership = leadership(
        api,
        lease if cfg.leader_elect else None,
        runner.lead,
        name="autoscaler",
        on_change=lambda leading: metrics.leader.set(1 if leading else 0),
    )
    return runner


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def run(args: argparse.Namespace) -> int:
    settings = effective_settings(args)
    cfg = settings.controller
    if settings.prometheus.url is None:
        fail(
            "the controller reads request rates from Prometheus: "
            "pass --prometheus-url or set SCHEDULER_EXTENDER_PROMETHEUS__URL"
        )
    if settings.log_level != "DEBUG":
        # The client's elector logs every retry at INFO (each 2 s on a standby).
        logging.getLogger("leaderelection").setLevel(logging.WARNING)
    controller = build(settings, kube_client(settings.kubeconfig))
    try:
        probes = ProbeServer(
            cfg.metrics_host, cfg.metrics_port, controller.metrics.registry,
            live={"controller": controller.live}, ready={"controller": controller.ready},
        )  # fmt: skip
    except OSError as exc:
        fail(f"cannot listen on {cfg.metrics_host}:{cfg.metrics_port}: {exc}")
    parts = Manager()
    parts.add("probes", probes)
    parts.add("controller", controller)
    stop = threading.Event()
    with parts:
        log.info(
            "AgentAutoscaler controller started (%s, every %gs; metrics on %s:%d)",
            "leader-elected" if cfg.leader_elect else "no leader election",
            cfg.sync_interval, cfg.metrics_host, probes.port,
        )  # fmt: skip
        with _stop_on_signals(stop):
            if cfg.with_extender:
                # uvicorn re-raises the signal that stopped it once it has shut down;
                # our handler takes it, so the Lease is still released when parts stop.
                # One forecast service: the extender and the controller agree on every agent.
                args.settings = settings
                return serve.run(args, forecast_service=controller.forecasts)
            stop.wait()
    return 0
