"""``scheduler-extender serve``: the extender HTTP service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import uvicorn
import uvloop
from fastapi import FastAPI
from kubernetes import client
from starlette.types import ASGIApp

from scheduler_extender.adapters.kube.binder import KubeBinder
from scheduler_extender.adapters.kube.cache import ClusterCache
from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.adapters.prometheus.forecasting import ForecastService
from scheduler_extender.adapters.prometheus.source import PrometheusPopularity
from scheduler_extender.adapters.prometheus.wiring import prometheus_popularity
from scheduler_extender.api.app import AppConfig, create_app, create_probe_app
from scheduler_extender.api.oneshot import OneWriteHttpProtocol
from scheduler_extender.commands.background_packer import build_background_packer
from scheduler_extender.commands.common import kube_client
from scheduler_extender.commands.runnables import Manager
from scheduler_extender.config import Settings
from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.popularity import (
    GpuCapacity,
    Popularity,
    PopularitySource,
    StaticPopularity,
)
from scheduler_extender.domain.scoring.registry import Scorer
from scheduler_extender.service.extender import Extender
from scheduler_extender.service.inflight import InFlight
from scheduler_extender.service.requeue import Refusals, Requeuer

log = logging.getLogger(__name__)

FLAGS = ["kubeconfig", "host", "port", "probe_port", "probe_host", "url_prefix", "log_level",
         "log_format", "debug_endpoints", "tls_cert_file", "tls_key_file", "tls_client_ca_file"]  # fmt: skip


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the extender HTTP service (filter, prioritize, bind)",
        description="Serve the kube-scheduler extender webhooks. Every flag can also be set "
        "with an environment variable SCHEDULER_EXTENDER_<FLAG> (e.g. SCHEDULER_EXTENDER_PORT).",
    )
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster config)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8888)")
    p.add_argument("--probe-port", dest="probe_port", type=int,
                   help="also serve /healthz, /readyz and /metrics over plain HTTP on this port "
                   "(for kubelet probes and Prometheus, when the verbs listen on loopback or require "
                   "client certificates)")  # fmt: skip
    p.add_argument("--probe-host", dest="probe_host",
                   help="address the --probe-port server listens on (default: --host)")  # fmt: skip
    p.add_argument(
        "--url-prefix", dest="url_prefix", help="path prefix of the verbs (default /scheduler)"
    )
    p.add_argument("--debug-endpoints", dest="debug_endpoints", action="store_true", default=None,
                   help="enable /debug/scores")  # fmt: skip
    p.add_argument(
        "--tls-cert-file", dest="tls_cert_file", type=Path, help="serve HTTPS with this certificate"
    )
    p.add_argument(
        "--tls-key-file", dest="tls_key_file", type=Path, help="private key of --tls-cert-file"
    )
    p.add_argument("--tls-client-ca-file", dest="tls_client_ca_file", type=Path,
                   help="require client certificates signed by this CA")  # fmt: skip
    p.set_defaults(run=run, settings_fields=FLAGS)


@dataclass
class Service:
    app: ASGIApp
    probe_app: FastAPI  # health, readiness and metrics alone (see --probe-port)
    cache: ClusterCache
    binder: KubeBinder
    metrics: Metrics
    requeuer: Requeuer
    # The background parts, in start order: the cache, the forecast, the packer.
    parts: Manager
    forecast: PrometheusPopularity | None = None  # None: static popularity


def build(
    settings: Settings, api: client.ApiClient, forecast_service: ForecastService | None = None
) -> Service:
    metrics = Metrics()
    cache = ClusterCache(
        api,
        agent_label=settings.agent_label,
        assume_timeout=settings.assume_timeout_seconds,
        backoff_max=settings.watch_backoff_max_seconds,
        metrics=metrics,
        gpu_resource=settings.gpu_resource,
        dra=settings.dra,
    )
    forecast = None
    popularity: PopularitySource = StaticPopularity(
        Popularity(MappingProxyType(dict(settings.static_popularity)), source="static")
    )
    if settings.prometheus.url is not None:
        popularity = forecast = prometheus_popularity(
            settings.prometheus, metrics.registry, forecast_service
        )
    binder = KubeBinder(api.configuration, agent_label=settings.agent_label)
    refusals = Refusals(window=settings.requeue_window_seconds)
    extender = Extender(
        cluster=cache,
        binder=binder,
        popularity=popularity,
        scorer=Scorer.from_weights(
            settings.score_weights,
            GpuCapacity(MappingProxyType(dict(settings.gpu_model_capacity))),
        ),
        rules=FilterRules(max_agent_replicas_per_node=settings.max_agent_replicas_per_node),
        gpu_resource=settings.gpu_resource,
        scheduler_names=frozenset({settings.scheduler_name}),
        max_staleness=settings.max_cache_staleness_seconds,
        in_flight=InFlight(timeout=settings.in_flight_wait_seconds),
        refusals=refusals,
        on_wait=lambda w: metrics.in_flight_waits.labels(w.settled).observe(w.seconds),
    )

    parts = Manager()

    def cache_ready() -> tuple[bool, dict[str, Any]]:
        snapshot = cache.snapshot()
        stale = cache.staleness()
        ready = cache.synced and stale <= settings.max_cache_staleness_seconds
        return ready, {"synced": cache.synced, "nodes": len(snapshot.nodes), "stale_seconds": stale}

    config = AppConfig(
        url_prefix=settings.url_prefix,
        max_body_bytes=settings.max_body_bytes,
        debug_endpoints=settings.debug_endpoints,
        agent_label=settings.agent_label,
    )
    parts.add("cache", cache, ready=cache_ready)
    if forecast is not None:
        # Informational only: without Prometheus, scoring falls back to neutral.
        parts.add("forecast", forecast, ready=lambda: (True, forecast.status()))
    packer = build_background_packer(settings, api, cache, metrics.registry)
    if packer is not None:
        parts.add("packer", packer)
    config.readiness = parts.checks()
    requeuer = Requeuer(
        refusals,
        cache,
        passes_now=lambda pod, nodes: bool(extender.feasible(pod, nodes).passed),
        toucher=binder,
        on_requeue=lambda outcome: metrics.requeues.labels(outcome).inc(),
    )
    return Service(
        create_app(extender, metrics, config),
        create_probe_app(metrics, config.readiness),
        cache,
        binder,
        metrics,
        requeuer,
        parts,
        forecast,
    )


def tls_options(settings: Settings) -> dict[str, Any]:
    if settings.tls_cert_file is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert_file),
        "ssl_keyfile": str(settings.tls_key_file) if settings.tls_key_file else None,
    }
    if settings.tls_client_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.tls_client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


def http_server(app: ASGIApp, host: str, port: int, **options: Any) -> uvicorn.Server:
    """The uvicorn setup every server of ``serve`` runs with (bench-extender's too)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=OneWriteHttpProtocol,
        log_config=None,
        access_log=False,
        **options,
    )
    return uvicorn.Server(config)


def run_on_event_loop(main: Coroutine[Any, Any, None]) -> None:
    # uvloop: the verbs' HTTP exchanges sit on kube-scheduler's serial path.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def _serve_all(servers: list[uvicorn.Server], service: Service) -> None:
    """Run the servers together; when one stops (e.g. on SIGTERM), stop them all."""
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    requeuer = asyncio.create_task(service.requeuer.run())
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)
    finally:
        requeuer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await requeuer
        await service.binder.close()


def run(args: argparse.Namespace, forecast_service: ForecastService | None = None) -> int:
    """Serve until stopped; ``forecast_service``: one to share (the controller's, when it
    runs the extender in its process), else the extender builds its own."""
    settings: Settings = args.settings
    api = kube_client(settings.kubeconfig)
    service = build(settings, api, forecast_service)
    log.info("serving the extender on %s:%d%s", settings.host, settings.port, settings.url_prefix)
    servers = [http_server(service.app, settings.host, settings.port, **tls_options(settings))]
    if settings.probe_port is not None:
        probe_host = settings.probe_host or settings.host
        log.info("serving probes and metrics on %s:%d", probe_host, settings.probe_port)
        servers.append(http_server(service.probe_app, probe_host, settings.probe_port))
    with service.parts:
        run_on_event_loop(_serve_all(servers, service))
    return 0
