"""The FastAPI application: extender verbs, health, readiness and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from scheduler_extender.adapters.kube.schema import NodeView
from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.api import wire
from scheduler_extender.api.errors import client_error, validation_error, validation_errors
from scheduler_extender.api.limits import BodySizeLimit
from scheduler_extender.api.preempt import add_preempt_route
from scheduler_extender.api.responses import json_reply
from scheduler_extender.domain.filtering import FilterOutcome
from scheduler_extender.domain.objects import Node
from scheduler_extender.service.extender import BindError, BindRequest, Extender, StaleCacheError

M = TypeVar("M", bound=BaseModel)
ReadinessProbe = Callable[[], tuple[bool, Mapping[str, Any]]]


@dataclass
class AppConfig:
    url_prefix: str = "/scheduler"
    max_body_bytes: int = 16 * 1024 * 1024
    debug_endpoints: bool = False
    agent_label: str = "scheduler-extender.io/agent"
    # Named readiness checks: the first element says ready or not, the second
    # adds details. Checks that only inform (e.g. forecast age) return True.
    readiness: dict[str, ReadinessProbe] = field(default_factory=dict)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}},
        }
    }


def create_app(extender: Extender, metrics: Metrics, config: AppConfig) -> FastAPI:
    app = FastAPI(title="scheduler-extender", version="0.1.0", docs_url=None, redoc_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    prefix = config.url_prefix

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return client_error(str(exc.detail), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_errors(exc.errors())

    async def parse(request: Request, model: type[M]) -> M | JSONResponse:
        body = await request.body()
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            return validation_error(exc)

    def sent_nodes(args: wire.ExtenderArgs) -> tuple[list[str], list[Node]] | JSONResponse:
        if args.node_names is not None:
            return args.node_names, []
        if args.nodes is None:
            return client_error("NodeNames: either NodeNames or Nodes must be set")
        nodes: list[Node] = []
        for i, raw in enumerate(args.nodes.items):
            try:
                nodes.append(NodeView.model_validate(raw).to_domain())
            except ValidationError as exc:
                return validation_error(exc, ("Nodes", "items", i))
        return [n.name for n in nodes], nodes

    def timed(
        verb: str,
    ) -> Callable[
        [Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]
    ]:
        def wrap(
            handler: Callable[[Request], Awaitable[Response]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def run(request: Request) -> Response:
                start = time.perf_counter()
                response = await handler(request)
                metrics.request_duration.labels(verb).observe(time.perf_counter() - start)
                if response.status_code >= 400:
                    metrics.decisions.labels(verb, "bad_request").inc()
                return response

            run.__name__ = handler.__name__
            return run

        return wrap

    @app.post(f"{prefix}/filter", openapi_extra=_schema(wire.ExtenderArgs), tags=["extender"])
    @timed("filter")
    async def filter_(request: Request) -> Response:
        args = await parse(request, wire.ExtenderArgs)
        if isinstance(args, JSONResponse):
            return args
        named = sent_nodes(args)
        if isinstance(named, JSONResponse):
            return named
        names, nodes = named
        pod = args.pod.to_domain(config.agent_label)
        try:
            outcome = extender.filter(pod, names, sent_nodes=nodes)
        except StaleCacheError as exc:
            # Our own failure: Error makes kube-scheduler retry (or skip us if ignorable).
            metrics.decisions.labels("filter", "stale_cache").inc()
            return json_reply(wire.filter_result(error=str(exc)))
        _count_rejections(metrics, outcome)
        metrics.decisions.labels("filter", "feasible" if outcome.passed else "none_feasible").inc()
        return json_reply(_filter_reply(args, outcome))

    @app.post(f"{prefix}/prioritize", openapi_extra=_schema(wire.ExtenderArgs), tags=["extender"])
    @timed("prioritize")
    async def prioritize(request: Request) -> Response:
        args = await parse(request, wire.ExtenderArgs)
        if isinstance(args, JSONResponse):
            return args
        named = sent_nodes(args)
        if isinstance(named, JSONResponse):
            return named
        names, nodes = named
        pod = args.pod.to_domain(config.agent_label)
        scores = extender.prioritize(pod, names, sent_nodes=nodes)
        metrics.decisions.labels("prioritize", "scored").inc()
        # HostPriorityList: a bare JSON array.
        return json_reply([{"Host": h, "Score": s} for h, s in scores.pairs()])

    @app.post(f"{prefix}/bind", openapi_extra=_schema(wire.ExtenderBindingArgs), tags=["extender"])
    @timed("bind")
    async def bind(request: Request) -> Response:
        args = await parse(request, wire.ExtenderBindingArgs)
        if isinstance(args, JSONResponse):
            return args
        bind_request = BindRequest(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
        try:
            outcome = await extender.bind(bind_request)
        except BindError as exc:
            metrics.binds.labels(exc.outcome).inc()
            metrics.decisions.labels("bind", "error").inc()
            if exc.outcome in ("insufficient", "conflict"):
                metrics.bind_conflicts.inc()
            # A failed bind is reported in the body: kube-scheduler then unreserves and retries.
            return JSONResponse(
                wire.ExtenderBindingResult(Error=str(exc)).model_dump(by_alias=True)
            )
        metrics.binds.labels(outcome).inc()
        metrics.decisions.labels("bind", "bound").inc()
        return JSONResponse(wire.ExtenderBindingResult().model_dump(by_alias=True))

    add_preempt_route(app, extender, metrics, prefix, config.agent_label)
    add_health_routes(app, metrics, config.readiness)

    if config.debug_endpoints:
        from scheduler_extender.api.debug import add_debug_routes

        add_debug_routes(app, extender)
    return app


def add_health_routes(
    app: FastAPI, metrics: Metrics, readiness: Mapping[str, ReadinessProbe]
) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        checks = {name: probe() for name, probe in readiness.items()}
        ready = all(ok for ok, _ in checks.values())
        body = {"ready": ready, "checks": {name: dict(d) for name, (_, d) in checks.items()}}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_probe_app(metrics: Metrics, readiness: Mapping[str, ReadinessProbe]) -> FastAPI:
    """Health, readiness and metrics only, for a plain-HTTP port beside an mTLS one.

    kubelet probes and Prometheus scrapes carry no client certificate, so when
    the verbs require one, these endpoints are served on their own port.
    """
    app = FastAPI(title="scheduler-extender probes", docs_url=None, redoc_url=None)
    add_health_routes(app, metrics, readiness)
    return app


def _count_rejections(metrics: Metrics, outcome: FilterOutcome) -> None:
    reasons: dict[str, int] = {}
    for rejection in outcome.failed.values():
        reasons[rejection.reason] = reasons.get(rejection.reason, 0) + 1
    for reason, count in reasons.items():
        metrics.nodes_filtered.labels(reason).inc(count)


def _filter_reply(args: wire.ExtenderArgs, outcome: FilterOutcome) -> dict[str, Any]:
    failed = {n: r.message for n, r in outcome.failed.items() if not r.unresolvable}
    unresolvable = {n: r.message for n, r in outcome.failed.items() if r.unresolvable}
    if args.node_names is not None:
        # Never null in node-cache mode: a null list would filter out every node.
        return wire.filter_result(
            node_names=outcome.passed, failed=failed, unresolvable=unresolvable
        )
    assert args.nodes is not None
    passed = set(outcome.passed)
    sent = [n for n in args.nodes.items if n.get("metadata", {}).get("name") in passed]
    return wire.filter_result(nodes=sent, failed=failed, unresolvable=unresolvable)
