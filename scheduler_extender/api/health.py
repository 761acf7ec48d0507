"""Health, readiness and metrics: one implementation for every process of the product.

``/healthz`` answers from the liveness checks, ``/readyz`` from the readiness
checks, both as ``{"status": "ok" | "failing", "checks": {name: detail}}``
with 200 or 503. The extender serves them through FastAPI (``add_health_routes``);
the AgentAutoscaler controller, which serves no API, through ``ProbeServer``, a
standard-library WSGI server in a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from starlette.responses import Response

Probe = Callable[[], tuple[bool, Mapping[str, Any]]]
Checks = Mapping[str, Probe]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def verdict(checks: Checks) -> tuple[int, bytes]:
    """The HTTP status and JSON body of a probe over ``checks``."""
    results = {name: probe() for name, probe in checks.items()}
    ok = all(passed for passed, _ in results.values())
    body = {
        "status": "ok" if ok else "failing",
        "checks": {name: dict(detail) for name, (_, detail) in results.items()},
    }
    return (200 if ok else 503), orjson.dumps(body)


def add_health_routes(
    app: FastAPI, registry: CollectorRegistry, *, live: Checks, ready: Checks
) -> None:
    def probe(checks: Checks) -> Response:
        status, body = verdict(checks)
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Response:
        return probe(live)

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        return probe(ready)

    @app.get("/metrics", tags=["health"])
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it)
        """Probes every few seconds would flood the log."""


class ProbeServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` for a process that serves no API."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, *, live: Checks, ready: Checks
    ) -> None:
        self._metrics = make_wsgi_app(registry)
        self._probes = {"/healthz": live, "/readyz": ready}
        self._server: WSGIServer = make_server(
            host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body: Iterable[bytes] = self._metrics(environ, start_response)
            return body
        checks = self._probes.get(path)
        if checks is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        status, payload = verdict(checks)
        reason = "OK" if status == 200 else "Service Unavailable"
        start_response(f"{status} {reason}", [("Content-Type", "application/json")])
        return [payload]
