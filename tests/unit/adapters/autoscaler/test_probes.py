"""The controller's HTTP endpoint and its leader-election settings."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler_extender.adapters.autoscaler.http import ProbeServer
from scheduler_extender.adapters.autoscaler.leader import LeaseConfig
from scheduler_extender.adapters.autoscaler.metrics import AutoscalerMetrics


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
    server = ProbeServer("127.0.0.1", 0, metrics.registry, live=probes.live, ready=probes.readiness)
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
    assert json.loads(body) == {"status": "failing", "leader": True}
    probes.ready = True
    assert get(server, "/readyz")[0] == 200
    probes.alive = False
    assert get(server, "/healthz")[0] == 503
    assert get(server, "/nope")[0] == 404


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(10, 10, 2), (15, 2, 2), (15, 10, 0), (5, 4, 4)]
)
def test_lease_settings_the_client_would_exit_on_are_refused(
    duration: int, deadline: int, retry: int
) -> None:
    with pytest.raises(ValueError, match="lease duration"):
        LeaseConfig("l", "ns", "me", duration, deadline, retry)


def test_default_lease_settings_are_accepted() -> None:
    LeaseConfig("l", "ns", "me")
