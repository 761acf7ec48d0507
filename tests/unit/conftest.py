from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.api.app import AppConfig, create_app
from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity, StaticPopularity
from scheduler_extender.domain.ports import BindConflictError
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, Scorer
from scheduler_extender.domain.shared import SharedCluster
from scheduler_extender.service.extender import Extender
from scheduler_extender.service.inflight import InFlight
from tests.builders import AGENT_LABEL, GPU


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeBinder:
    """Stands in for the API server's pods/binding (unit tests have no cluster)."""

    pods: dict[str, Pod] = field(default_factory=dict)
    bound: dict[str, str] = field(default_factory=dict)  # uid -> node
    calls: int = 0
    fail_with: Exception | None = None

    async def fetch_pod(self, namespace: str, name: str) -> Pod | None:
        return self.pods.get(f"{namespace}/{name}")

    async def bind(self, pod: Pod, node_name: str) -> None:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        if pod.uid in self.bound:
            raise BindConflictError("already bound")
        self.bound[pod.uid] = node_name


@dataclass
class Harness:
    cluster: SharedCluster
    binder: FakeBinder
    extender: Extender
    metrics: Metrics
    client: TestClient
    clock: FakeClock


def make_harness(
    popularity: dict[str, float] | None = None,
    *,
    debug: bool = False,
    max_body: int = 16 * 1024 * 1024,
    rules: FilterRules | None = None,
    in_flight_wait: float = 0.0,  # no wait for the previous pod's bind unless a test asks
) -> Harness:
    clock = FakeClock()
    cluster = SharedCluster(assume_timeout=30.0, clock=clock)
    binder = FakeBinder()
    extender = Extender(
        cluster=cluster,
        binder=binder,
        popularity=StaticPopularity(Popularity(popularity or {}, source="static")),
        scorer=Scorer.from_weights(DEFAULT_WEIGHTS),
        rules=rules or FilterRules(),
        gpu_resource=GPU,
        scheduler_names=frozenset({"gpu-scheduler"}),
        in_flight=InFlight(timeout=in_flight_wait),
    )
    metrics = Metrics()
    app = create_app(
        extender,
        metrics,
        AppConfig(
            debug_endpoints=debug,
            max_body_bytes=max_body,
            agent_label=AGENT_LABEL,
            readiness={"cache": lambda: (True, {"synced": True})},
        ),
    )
    return Harness(cluster, binder, extender, metrics, TestClient(app), clock)


@pytest.fixture
def harness() -> Harness:
    return make_harness()
