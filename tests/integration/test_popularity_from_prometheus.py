"""The forecast loop on two days of real Prometheus history, and the scores it drives."""

from __future__ import annotations

import time

import numpy as np
import pytest

from scheduler_extender.adapters.prometheus.source import PrometheusPopularity
from scheduler_extender.domain.forecast.forecaster import Status
from scheduler_extender.domain.objects import Pod
from tests.builders import node, pod, pod_json
from tests.integration.conftest import HISTORY, Service, Stack, service


def refreshed(stack: Stack) -> PrometheusPopularity:
    source = stack.source(history=HISTORY, step=60.0, horizon=900.0)
    assert source.refresh(), source.status()
    return source


def test_hot_agents_are_forecast_hot(prometheus_history: Stack) -> None:
    source = refreshed(prometheus_history)
    forecasts = source.latest()
    assert forecasts is not None
    assert forecasts.points == 2881  # two days at one minute, read through real PromQL
    by_agent = forecasts.by_agent()
    traffic = prometheus_history.traffic
    assert set(by_agent) == set(traffic.means)
    assert all(f.status is Status.OK for f in by_agent.values())

    popularity = source.current()
    ranked = sorted(popularity.rates, key=lambda a: popularity.rates[a], reverse=True)
    truly = sorted(traffic.means, key=lambda a: traffic.means[a], reverse=True)
    assert ranked[:3] == truly[:3]
    now = time.time()
    for agent, forecast in by_agent.items():
        ahead = [traffic.rate(agent, now + s) for s in range(0, 901, 60)]
        assert forecast.peak == pytest.approx(max(ahead), rel=0.1), agent
        assert min(forecast.upper) >= min(forecast.point)


def place(svc: Service, pods: list[Pod]) -> None:
    """Nodes n0..n3 with 8 GPUs each, and ``pods`` (bound) in the extender's cache."""
    cluster = svc.cluster
    with cluster.locked():
        for name in ("n0", "n1", "n2", "n3"):
            cluster.state.upsert_node(node(name, 8))
        for p in pods:
            cluster.state.upsert_pod(p)
        cluster.publish_locked()


def test_scores_spread_the_hot_agent_and_pack_the_cold_ones(prometheus_history: Stack) -> None:
    source = refreshed(prometheus_history)
    svc = service(source, source)
    # agent-0 is the hottest; agent-7 the coldest. One hot replica sits on n0,
    # cold replicas fill most of n1, n2 and n3 are empty.
    place(
        svc,
        [
            pod("hot-0", 1, agent="agent-0", node="n0"),
            *(pod(f"cold-{i}", 2, agent="agent-7", node="n1") for i in range(3)),
        ],
    )
    names = ["n0", "n1", "n2", "n3"]
    hot = svc.extender.prioritize(pod("hot-1", 1, agent="agent-0"), names, explain=True)
    scores = dict(hot.pairs())
    assert scores["n0"] < min(scores["n1"], scores["n2"], scores["n3"])
    popularity = dict(zip(hot.hosts, hot.contributions["popularity"], strict=True))
    assert popularity["n0"] == min(popularity.values())

    cold = svc.extender.prioritize(pod("cold-3", 2, agent="agent-7"), names, explain=True)
    assert max(cold.pairs(), key=lambda pair: pair[1])[0] == "n1"
    popularity = dict(zip(cold.hosts, cold.contributions["popularity"], strict=True))
    assert popularity["n1"] == max(popularity.values())

    # The same through HTTP, as kube-scheduler asks.
    answer = svc.http.post(
        "/scheduler/prioritize",
        json={"Pod": pod_json("hot-1", 1, agent="agent-0"), "NodeNames": names},
    )
    assert answer.status_code == 200
    over_http = {entry["Host"]: entry["Score"] for entry in answer.json()}
    assert over_http == scores


def test_the_background_loop_publishes_from_prometheus(prometheus_history: Stack) -> None:
    source = prometheus_history.source(
        history=HISTORY, refresh_interval=60.0, correction_interval=0.5
    )
    source.start()
    try:
        deadline = time.monotonic() + 60.0
        while source.latest() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert source.latest() is not None
        assert source.status()["up"] is True
        rates = source.current().rates
        assert np.argmax([rates[f"agent-{i}"] for i in range(8)]) == 0
    finally:
        source.stop()
