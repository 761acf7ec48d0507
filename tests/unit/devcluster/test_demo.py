"""The demo scenario's pure parts: its traffic, its manifests and how it reads the extender's log."""

from __future__ import annotations

import json
import math
import urllib.parse
from pathlib import Path

import pytest

from scheduler_extender.devcluster import demo


def test_the_ramp_agent_is_lowest_after_the_warm_up_and_peaks_half_a_day_later() -> None:
    timeline = demo.SHORT
    traffic = demo.demo_traffic(timeline, started=1000.0)
    agent = demo.RAMP_AGENT
    trough, peak = 1000.0 + timeline.warm_up, 1000.0 + timeline.ramp_peak
    samples = [trough + i for i in range(-20, int(timeline.season / 2) + 20)]
    rates = {t: traffic.rate(agent, t) for t in samples}
    # The wobbles move the extremes by a few seconds at most.
    assert min(rates, key=rates.__getitem__) == pytest.approx(trough, abs=timeline.season / 20)
    assert max(rates, key=rates.__getitem__) == pytest.approx(peak, abs=timeline.season / 20)
    # The ramp needs several more replicas than the trough: something for the autoscaler to do.
    assert demo.replicas_needed(rates[peak]) >= demo.replicas_needed(rates[trough]) + 4


def test_popularity_shifts_the_hottest_agent_changes_over_the_day() -> None:
    traffic = demo.demo_traffic(demo.FULL, started=0.0)
    hottest = {
        max(demo.AGENTS, key=lambda a: traffic.rate(a, t))
        for t in range(0, int(demo.FULL.season), 10)
    }
    assert {"agent-00", demo.RAMP_AGENT} <= hottest


def test_no_day_repeats_the_one_before_exactly() -> None:
    traffic = demo.demo_traffic(demo.FULL, started=0.0)
    day = demo.FULL.season
    diffs = [
        abs(traffic.rate("agent-00", t + day) - traffic.rate("agent-00", t))
        for t in range(0, 480, 7)
    ]
    assert max(diffs) > 1.0


@pytest.mark.parametrize("agent", list(demo.AGENTS))
def test_the_counter_is_the_integral_of_the_rate(agent: str) -> None:
    traffic = demo.demo_traffic(demo.FULL, started=5000.0)
    for start in (0.0, 4321.0, 9000.0):
        steps = 2000
        width = 100.0 / steps
        integral = sum(traffic.rate(agent, start + (i + 0.5) * width) * width for i in range(steps))
        counted = traffic.count(agent, start + 100.0) - traffic.count(agent, start)
        assert counted == pytest.approx(integral, rel=1e-6)
    assert traffic.count(agent, 0.0) == pytest.approx(0.0, abs=1e-9)


def test_extender_and_controller_forecast_the_compressed_day() -> None:
    env = demo.extender_env("http://127.0.0.1:9", demo.SHORT, dry_run=True)
    assert env["SCHEDULER_EXTENDER_PROMETHEUS__URL"] == "http://127.0.0.1:9"
    assert env["SCHEDULER_EXTENDER_PROMETHEUS__SEASON"] == "240s"
    assert env["SCHEDULER_EXTENDER_PACKER__DRY_RUN"] == "true"
    assert "SCHEDULER_EXTENDER_STATIC_POPULARITY" not in env
    executing = demo.extender_env("http://127.0.0.1:9", demo.SHORT, dry_run=False)
    assert executing["SCHEDULER_EXTENDER_PACKER__DRY_RUN"] == "false"


def test_the_large_pod_fits_only_a_whole_batch_node_and_never_preempts() -> None:
    pod = demo.large_pod("gpu-scheduler")
    requests = pod["spec"]["containers"][0]["resources"]["requests"]
    assert requests["nvidia.com/gpu"] == "8"
    assert pod["spec"]["nodeSelector"] == {demo.POOL_LABEL: demo.BATCH_POOL}
    classes = {c["metadata"]["name"]: c for c in demo.priority_classes()}
    assert pod["spec"]["priorityClassName"] == demo.HIGH_CLASS
    assert all(c["preemptionPolicy"] == "Never" for c in classes.values())
    assert classes[demo.HIGH_CLASS]["value"] > classes[demo.LOW_CLASS]["value"]
    low = demo.batch_deployment("prep-a", "gpu-scheduler")
    assert low["spec"]["template"]["spec"]["priorityClassName"] == demo.LOW_CLASS


def test_every_agent_gets_an_autoscaler_for_its_deployment() -> None:
    manifest = demo.agent_autoscaler("agent-03", demo.FULL)
    assert manifest["spec"]["scaleTargetRef"]["name"] == "agent-03"
    assert manifest["spec"]["agent"] == "agent-03"
    assert manifest["spec"]["mode"] == "Auto"
    assert manifest["spec"]["leadTime"] == "30s"


def test_graph_links_are_query_urls_of_that_prometheus() -> None:
    links = demo.graph_links("http://127.0.0.1:9090")
    for url in links.values():
        parsed = urllib.parse.urlparse(url)
        assert parsed.netloc == "127.0.0.1:9090"
        assert parsed.path == "/api/v1/query"
        assert urllib.parse.parse_qs(parsed.query)["query"]
    assert any("agent_requests_total" in url for url in links.values())


def test_last_decisions_keep_the_best_node_of_each_scored_pod(tmp_path: Path) -> None:
    log = tmp_path / "extender.log"

    def score(pod: str, node: str, value: int) -> str:
        return json.dumps({"level": "debug", "msg": f"score {pod} -> {node}", "pod": pod,
                           "node": node, "score": value, "policies": {"spread": value / 2}})  # fmt: skip

    log.write_text(
        "\n".join(
            [
                "--- starting: scheduler-extender serve",
                score("agents/a-1", "gpu-0", 90),
                score("agents/a-1", "gpu-1", 80),
                '{"level": "info", "msg": "bound"}',
                score("agents/b-1", "gpu-2", 70),
                score("agents/a-1", "gpu-3", 95),  # scored again later: the newest call counts
                "not json",
            ]
        )
    )
    decisions = demo.last_decisions(log)
    assert [(d.pod, d.node, d.score) for d in decisions] == [
        ("agents/b-1", "gpu-2", 70),
        ("agents/a-1", "gpu-3", 95),
    ]
    assert decisions[-1].policies == {"spread": 47.5}
    assert demo.last_decisions(tmp_path / "missing.log") == []
    assert not math.isnan(decisions[0].score)
