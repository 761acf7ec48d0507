"""The FastAPI application: extender verbs, health, readiness and metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.api.errors import client_error, validation_errors
from scheduler_extender.api.health import Checks, Probe, add_health_routes
from scheduler_extender.api.limits import BodySizeLimit
from scheduler_extender.api.verbs import VerbRouter, Verbs, verb_openapi_paths
from scheduler_extender.service.extender import Extender


@dataclass
class AppConfig:
    url_prefix: str = "/scheduler"
    max_body_bytes: int = 16 * 1024 * 1024
    debug_endpoints: bool = False
    agent_label: str = "scheduler-extender.io/agent"
    # Named readiness checks: the first element says ready or not, the second
    # adds details. Checks that only inform (e.g. forecast age) return True.
    readiness: dict[str, Probe] = field(default_factory=dict)


def create_app(extender: Extender, metrics: Metrics, config: AppConfig) -> ASGIApp:
    """The verbs on their short path (see ``api/verbs.py``) in front of the FastAPI app."""
    app = FastAPI(title="scheduler-extender", version="0.1.0", docs_url=None, redoc_url=None)
    prefix = config.url_prefix

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return client_error(str(exc.detail), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_errors(exc.errors())

    add_health_routes(app, metrics.registry, live={}, ready=config.readiness)

    if config.debug_endpoints:
        from scheduler_extender.api.debug import add_debug_routes

        add_debug_routes(app, extender)
    document_paths(app, verb_openapi_paths(prefix))
    verbs = Verbs(extender, metrics, config.agent_label)
    # Outermost: no path buffers a body over the limit.
    return BodySizeLimit(VerbRouter(app, verbs.routes(prefix), metrics), config.max_body_bytes)


def document_paths(app: FastAPI, paths: Mapping[str, Any]) -> None:
    """Add ``paths`` (served outside FastAPI's routing) to the app's OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema["paths"] = {**paths, **schema.get("paths", {})}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def create_probe_app(metrics: Metrics, readiness: Checks) -> FastAPI:
    """Health, readiness and metrics only, for a plain-HTTP port beside an mTLS one.

    kubelet probes and Prometheus scrapes carry no client certificate, so when
    the verbs require one, these endpoints are served on their own port.
    """
    app = FastAPI(title="scheduler-extender probes", docs_url=None, redoc_url=None)
    add_health_routes(app, metrics.registry, live={}, ready=readiness)
    return app
