"""Fixtures for tests against a real Prometheus (built from its Go module by ``make tools``).

Every test here is marked ``integration``. Without the binaries the tests FAIL
(they never skip) and say to run ``make tools``.

Fixtures
    ``traffic``            -> ``AgentTraffic``: 8 agents, Zipf(1.1) popularity,
                              40 req/s in all, a daily cycle.
    ``prometheus_history`` -> ``Stack`` (module scope): a ``TrafficExporter`` and a
                              Prometheus scraping it every second, with two days
                              and 15 minutes of history backfilled at 15 s.
    ``fresh_prometheus``   -> ``Stack`` (function scope): the same without history;
                              the test may stop the server.
Helpers
    ``service(source)``    -> ``Service``: an extender on an in-memory cluster with
                              ``source`` as popularity, its HTTP app and a TestClient.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.adapters.prometheus.client import ClientOptions, PrometheusClient
from scheduler_extender.adapters.prometheus.source import PrometheusPopularity
from scheduler_extender.adapters.prometheus.wiring import forecast_service, loop_settings
from scheduler_extender.api.app import AppConfig, create_app
from scheduler_extender.config import PrometheusSettings
from scheduler_extender.devcluster.prometheus import (
    AgentTraffic,
    PrometheusMissingError,
    PrometheusServer,
    TrafficExporter,
    TrafficStack,
    binaries,
    start_traffic_stack,
    zipf_rates,
)
from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import PopularitySource
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, Scorer
from scheduler_extender.domain.shared import SharedCluster
from scheduler_extender.service.extender import Extender
from scheduler_extender.service.inflight import InFlight
from tests.builders import AGENT_LABEL, GPU

QUERY = "sum by (agent) (rate(agent_requests_total[1m]))"
HISTORY = 2 * 86400.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class Stack:
    stack: TrafficStack
    sources: list[PrometheusPopularity] = field(default_factory=list)  # stopped at teardown

    @property
    def traffic(self) -> AgentTraffic:
        return self.stack.traffic

    @property
    def exporter(self) -> TrafficExporter:
        return self.stack.exporter

    @property
    def server(self) -> PrometheusServer:
        return self.stack.server

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, retries: int = 0) -> PrometheusClient:
        return PrometheusClient(ClientOptions(url=self.url, timeout=5.0, retries=retries))

    def source(self, **settings: float) -> PrometheusPopularity:
        """A popularity source as ``serve`` builds it; ``settings``: PrometheusSettings fields."""
        prometheus = PrometheusSettings.model_validate(
            {"url": self.url, "query": QUERY, **settings}
        )
        source = PrometheusPopularity(
            forecast_service(prometheus, client=self.client()), loop_settings(prometheus)
        )
        self.sources.append(source)
        return source

    def stop(self) -> None:
        for source in self.sources:
            source.stop()
        self.stack.stop()

    def wait_for_rates(self, timeout: float = 30.0) -> None:
        """Until the instant query sees every agent (needs two live scrapes in 1m)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = httpx.get(f"{self.url}/api/v1/query", params={"query": QUERY}).json()
            if len(answer["data"]["result"]) == len(self.traffic.means):
                return
            time.sleep(0.5)
        pytest.fail(f"Prometheus at {self.url} never returned a rate for every agent")


@pytest.fixture(scope="session")
def traffic() -> AgentTraffic:
    try:
        binaries()
    except PrometheusMissingError as exc:
        pytest.fail(str(exc))
    return AgentTraffic(zipf_rates(8, 40.0))


@pytest.fixture(scope="module")
def prometheus_history(
    tmp_path_factory: pytest.TempPathFactory, traffic: AgentTraffic
) -> Iterator[Stack]:
    stack = Stack(
        start_traffic_stack(tmp_path_factory.mktemp("prometheus"), traffic, history=HISTORY + 900)
    )
    try:
        stack.wait_for_rates()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def fresh_prometheus(tmp_path: Path, traffic: AgentTraffic) -> Iterator[Stack]:
    stack = Stack(start_traffic_stack(tmp_path, traffic, history=0))
    try:
        yield stack
    finally:
        stack.stop()


class NoBinder:
    """These tests filter and prioritize; nothing binds."""

    async def fetch_pod(self, namespace: str, name: str) -> Pod | None:
        return None

    async def bind(self, pod: Pod, node_name: str) -> None:
        raise AssertionError("no bind expected")


@dataclass
class Service:
    cluster: SharedCluster
    extender: Extender
    http: TestClient


def service(source: PopularitySource, readiness_details: PrometheusPopularity) -> Service:
    cluster = SharedCluster(assume_timeout=30.0)
    extender = Extender(
        cluster=cluster,
        binder=NoBinder(),
        popularity=source,
        scorer=Scorer.from_weights(DEFAULT_WEIGHTS),
        rules=FilterRules(),
        gpu_resource=GPU,
        scheduler_names=frozenset({"gpu-scheduler"}),
        # No wait for the previous pod's bind: tests of the wait set their own.
        in_flight=InFlight(timeout=0.0),
    )
    config = AppConfig(
        agent_label=AGENT_LABEL,
        debug_endpoints=True,
        readiness={
            "cache": lambda: (True, {"synced": True}),
            "forecast": lambda: (True, readiness_details.status()),
        },
    )
    return Service(cluster, extender, TestClient(create_app(extender, Metrics(), config)))
