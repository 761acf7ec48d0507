"""The controller's small HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``.

A standard-library WSGI server in a thread: the controller serves no API,
so it needs no web framework, only probes and a scrape target.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

Probe = Callable[[], tuple[bool, dict[str, Any]]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it)
        """Probes every few seconds would flood the log."""


class ProbeServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, *, live: Probe, ready: Probe
    ) -> None:
        self._metrics = make_wsgi_app(registry)
        self._probes = {"/healthz": live, "/readyz": ready}
        self._server: WSGIServer = make_server(
            host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="controller-http", daemon=True
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
        probe = self._probes.get(path)
        if probe is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        ok, detail = probe()
        payload = json.dumps({"status": "ok" if ok else "failing", **detail}).encode()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [payload]
