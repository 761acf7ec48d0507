"""Live scrapes only: a burst corrects at once, and Prometheus dying does not stop scheduling."""

from __future__ import annotations

import time

import pytest

from scheduler_extender.adapters.prometheus.source import PrometheusPopularity
from scheduler_extender.domain.popularity import NEUTRAL
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE
from tests.builders import node, pod, pod_json
from tests.integration.conftest import Service, Stack, service

# Each test starts its own Prometheus and waits for live scrapes.
pytestmark = pytest.mark.slow


def refresh_until_forecast(source: PrometheusPopularity, agents: set[str]) -> None:
    """Refresh until the range query (aligned to its step) covers every agent."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        assert source.refresh(), source.status()
        latest = source.latest()
        if latest is not None and agents <= set(latest.by_agent()):
            return
        time.sleep(1.0)
    pytest.fail(f"no forecast for all of {sorted(agents)} after a minute of live scrapes")


def fill(svc: Service) -> None:
    with svc.cluster.locked():
        for name in ("n0", "n1", "n2"):
            svc.cluster.state.upsert_node(node(name, 8))
        svc.cluster.state.upsert_pod(pod("hot-0", 1, agent="agent-0", node="n0"))
        svc.cluster.publish_locked()


def verbs_answer(svc: Service) -> dict[str, int]:
    """Filter then prioritize a new replica of agent-0 over HTTP, as kube-scheduler does."""
    args = {"Pod": pod_json("hot-1", 1, agent="agent-0"), "NodeNames": ["n0", "n1", "n2"]}
    filtered = svc.http.post("/scheduler/filter", json=args)
    assert filtered.status_code == 200
    assert filtered.json()["NodeNames"] == ["n0", "n1", "n2"]
    prioritized = svc.http.post("/scheduler/prioritize", json=args)
    assert prioritized.status_code == 200
    return {entry["Host"]: entry["Score"] for entry in prioritized.json()}


def test_prometheus_stopped_mid_run_keeps_scheduling_working(fresh_prometheus: Stack) -> None:
    fresh_prometheus.wait_for_rates()
    clock = [1000.0]
    source = fresh_prometheus.source(max_age=120.0, history=600.0, step=15.0, horizon=60.0)
    source.monotonic = lambda: clock[0]
    refresh_until_forecast(source, set(fresh_prometheus.traffic.means))
    svc = service(source, source)
    fill(svc)
    before = verbs_answer(svc)
    assert before["n0"] < before["n1"]  # the hot agent is spread

    fresh_prometheus.server.stop()
    clock[0] += 60.0
    assert not source.refresh()
    assert not source.correct()
    assert verbs_answer(svc) == before  # the last good forecast, still in use
    ready = svc.http.get("/readyz")
    assert ready.status_code == 200  # never unready because of Prometheus
    details = ready.json()["checks"]["forecast"]
    assert details["up"] is False
    assert details["forecast_age_seconds"] == 60.0
    assert details["stale"] is False

    clock[0] += 61.0  # past max_age: neutral popularity, scheduling goes on
    assert source.current() is NEUTRAL
    after = verbs_answer(svc)
    assert set(after) == {"n0", "n1", "n2"}
    table = svc.extender.prioritize(pod("hot-1", 1, agent="agent-0"), ["n0", "n1"], explain=True)
    weight = table.contributions["popularity"]
    assert weight[0] == weight[1] == pytest.approx(10 * 3 / 6 * NEUTRAL_SCORE)
    assert svc.http.get("/readyz").json()["checks"]["forecast"]["stale"] is True


def test_a_burst_corrects_the_popularity_at_once(fresh_prometheus: Stack) -> None:
    fresh_prometheus.wait_for_rates()
    source = fresh_prometheus.source(history=600.0, step=15.0, horizon=60.0, correction_factor=2.0)
    refresh_until_forecast(source, set(fresh_prometheus.traffic.means))
    forecast = source.current().rate("agent-7")
    assert forecast is not None
    fresh_prometheus.exporter.boost("agent-7", 20.0)
    deadline = time.monotonic() + 60.0
    corrected = forecast
    while time.monotonic() < deadline:
        assert source.correct()
        corrected = source.current().rate("agent-7") or 0.0
        if corrected > 2.0 * forecast:
            break
        time.sleep(0.5)
    assert corrected > 2.0 * forecast  # seen in seconds, without waiting for a refit
    latest = source.latest()
    assert latest is not None
    assert latest.by_agent()["agent-7"].peak == forecast  # the forecast itself is unchanged
    assert source.status()["corrected_agents"] >= 1
