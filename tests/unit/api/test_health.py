"""Health, readiness and metrics: the extender's FastAPI routes and the controller's ProbeServer."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler_extender.adapters.autoscaler.metrics import AutoscalerMetrics
from scheduler_extender.api.health import ProbeServer
from tests.unit.conftest import Harness


def test_healthz_readyz_and_metrics(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = harness.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert ready.json()["checks"]["cache"]["synced"] is True
    harness.client.post(
        "/scheduler/filter", json={"Pod": {"metadata": {"name": "p"}}, "NodeNames": []}
    )
    text = harness.client.get("/metrics").text
    assert 'scheduler_extender_request_duration_seconds_count{verb="filter"} 1.0' in text
    assert 'scheduler_extender_decisions_total{outcome="none_feasible",verb="filter"} 1.0' in text


class Probes:
    def __init__(self) -> None:
        self.alive = True
        self.ready = False

    def live(self) -> tuple[bool, dict[str, Any]]:
        return self.alive, {"leader": True}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready, {"leader": True}


@pytest.fixture
def served() -> Iterator[tuple[ProbeServer, Probes, AutoscalerMetrics]]:
    probes = Probes()
    metrics = AutoscalerMetrics()
    server = ProbeServer(
        "127.0.0.1",
        0,
        metrics.registry,
        live={"controller": probes.live},
        ready={"controller": probes.readiness},
    )
    server.start()
    try:
        yield server, probes, metrics
    finally:
        server.stop()


def get(server: ProbeServer, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_are_served(served: tuple[ProbeServer, Probes, AutoscalerMetrics]) -> None:
    server, _, metrics = served
    metrics.leader.set(1)
    status, body = get(server, "/metrics")
    assert status == 200
    assert "scheduler_extender_autoscaler_leader 1.0" in body


def test_probes_answer_with_their_state(
    served: tuple[ProbeServer, Probes, AutoscalerMetrics],
) -> None:
    server, probes, _ = served
    assert get(server, "/healthz")[0] == 200
    status, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body) == {"status": "failing", "checks": {"controller": {"leader": True}}}
    probes.ready = True
    assert get(server, "/readyz")[0] == 200
    probes.alive = False
    assert get(server, "/healthz")[0] == 503
    assert get(server, "/nope")[0] == 404
