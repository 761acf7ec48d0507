"""Prometheus killed and restarted under the running extender: scheduling never stops, the
forecast ages until the chart's SchedulerExtenderForecastStale alert fires, and the alert
resolves once the same Prometheus (same port, same data directory) is back.

Two Prometheus servers run beside the local control plane:

* the *source*: scrapes a synthetic traffic exporter (20 minutes backfilled) and feeds
  the extender's forecast through ``SCHEDULER_EXTENDER_PROMETHEUS__URL``. The test
  SIGKILLs it while GPU pods are being scheduled and later starts it again;
* the *evaluator*: scrapes the extender's /metrics every second and evaluates the alert
  rule, so the alert's state comes from Prometheus' own rule engine (``/api/v1/rules``).

The rule is read from the chart's rules file (helm/scheduler-extender/alerts), not copied.
Its age threshold (30 minutes) and ``for`` (5 minutes) would make the test last over half
an hour, so the test rewrites the one constant the expression compares against to
``THRESHOLD`` seconds and scales ``for`` by the same factor; everything else, the metric,
the arithmetic and the aggregation, is the chart's. The extender refreshes every 2 s on a
5 s step, so a healthy forecast is at most ~10 s old, well below the threshold.
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.processes import (
    ManagedProcess,
    Started,
    free_port,
    wait_until,
)
from scheduler_extender.devcluster.prometheus import (
    AgentTraffic,
    PrometheusMissingError,
    PrometheusServer,
    TrafficStack,
    binaries,
    start_traffic_stack,
    zipf_rates,
)
from scheduler_extender.domain.forecast.durations import parse_duration
from tests.e2e.helpers import NodePool, bound, list_pods, overallocated, wait_for
from tests.support.figures import record

T = TypeVar("T")

RULES_FILE = (
    Path(__file__).resolve().parents[2]
    / "helm"
    / "scheduler-extender"
    / "alerts"
    / "scheduler-extender.rules.yaml"
)
ALERT = "SchedulerExtenderForecastStale"
AGENTS = 8
THRESHOLD = 24.0  # seconds of forecast age the test's alert fires at (the chart says 1800)
STEP = 5.0  # the extender's forecast step: its last-success timestamp moves in these steps
EXTENDER_ENV = {
    "SCHEDULER_EXTENDER_PROMETHEUS__REFRESH_INTERVAL": "2s",
    "SCHEDULER_EXTENDER_PROMETHEUS__CORRECTION_INTERVAL": "1s",
    "SCHEDULER_EXTENDER_PROMETHEUS__STEP": f"{STEP:g}s",
    "SCHEDULER_EXTENDER_PROMETHEUS__HISTORY": "20m",
    "SCHEDULER_EXTENDER_PROMETHEUS__HORIZON": "1m",
    # Popularity turns neutral when the alert's condition becomes true: scheduling
    # must go on without any forecast too.
    "SCHEDULER_EXTENDER_PROMETHEUS__MAX_AGE": f"{THRESHOLD:g}s",
    # Fail fast while Prometheus is down rather than retrying within one refresh.
    "SCHEDULER_EXTENDER_PROMETHEUS__TIMEOUT": "1s",
    "SCHEDULER_EXTENDER_PROMETHEUS__RETRIES": "0",
}
NODES, GPUS_PER_NODE = 10, 8
POD_INTERVAL = 2.0  # one new GPU pod every this many seconds, all through the scenario


# -- the chart's rule, shortened ----------------------------------------------------
def chart_rule(name: str) -> dict[str, Any]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                found: dict[str, Any] = rule
                return found
    raise AssertionError(f"{RULES_FILE} has no alert {name}")


def shortened(rule: Mapping[str, Any], threshold: float) -> dict[str, Any]:
    """``rule`` with the constant its expression compares against replaced by ``threshold``
    and its ``for`` scaled by the same factor; the rest of the rule is left as it is."""
    match = re.fullmatch(r"(?s)(.*>\s*)(\d+(?:\.\d+)?)\s*", rule["expr"])
    assert match is not None, f"{ALERT} no longer ends in '> <seconds>': {rule['expr']!r}"
    chart_threshold = float(match[2])
    hold = parse_duration(rule["for"]) * threshold / chart_threshold
    assert hold >= 2.0, f"'for' scaled down to {hold:.1f}s: under two rule evaluations"
    return {**rule, "expr": f"{match[1]}{threshold:g}", "for": f"{round(hold)}s"}


@dataclass
class RuleEvaluator(Started):
    """A Prometheus on 127.0.0.1 that scrapes ``target`` every second and evaluates ``rules``."""

    workdir: Path
    target: str  # host:port serving /metrics
    rules: list[dict[str, Any]]
    port: int = field(default_factory=free_port)
    _process: ManagedProcess | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        prometheus, _ = binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        rules_file = self.workdir / "rules.yaml"
        rules_file.write_text(yaml.safe_dump({"groups": [{"name": "test", "rules": self.rules}]}))
        config = self.workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules_file)],
                    "scrape_configs": [
                        {"job_name": "scheduler-extender", "static_configs": [{"targets": [self.target]}]}
                    ],
                }
            )
        )  # fmt: skip
        self._process = ManagedProcess(
            "prometheus-rules",
            [
                str(prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--web.console.templates={self.workdir}",
                f"--web.console.libraries={self.workdir}",
            ],
            self.workdir / "prometheus.log",
            port=self.port,
        )
        wait_until(
            f"the rule-evaluating Prometheus on {self.url}",
            self._ready,
            timeout=60.0,
            process=self._process,
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def alert(self, name: str) -> dict[str, Any]:
        """The alerting rule as /api/v1/rules reports it (state, health, lastError, alerts)."""
        groups = httpx.get(f"{self.url}/api/v1/rules", params={"type": "alert"}, timeout=5.0)
        for group in groups.json()["data"]["groups"]:
            for rule in group["rules"]:
                if rule["name"] == name:
                    found: dict[str, Any] = rule
                    return found
        raise AssertionError(f"Prometheus on {self.url} does not evaluate {name}")

    def holds(self, promql: str) -> bool:
        """Whether an instant query of ``promql`` returns anything now."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        return bool(answer.json()["data"]["result"])

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def alert_state(evaluator: RuleEvaluator) -> str:
    rule = evaluator.alert(ALERT)
    assert rule["health"] != "err", rule.get("lastError")  # the expression must evaluate
    state: str = rule["state"]
    return state


# -- the source Prometheus ------------------------------------------------------------
def kill(server: PrometheusServer) -> None:
    """SIGKILL the Prometheus process ``server`` started (a direct child of this process)."""
    flag = f"--web.listen-address=127.0.0.1:{server.port}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue  # gone meanwhile
        if flag in argv and parent == os.getpid():
            os.kill(int(proc.name), signal.SIGKILL)
            wait_for("the killed Prometheus to exit", lambda: not server.running(), timeout=10)
            return
    raise AssertionError(f"no Prometheus child listening on port {server.port}")


def restart(server: PrometheusServer) -> None:
    """Start ``server`` again: same port, same data directory (its WAL is replayed)."""
    server.stop()  # reaps the killed process and closes its log
    server.history = None  # already in the data directory: backfilling again would duplicate it
    server.start()
    server.wait_scraped()


def series_at(server: PrometheusServer, query: str, at: float) -> int:
    answer = httpx.get(
        f"{server.url}/api/v1/query", params={"query": query, "time": f"{at:.3f}"}, timeout=5.0
    )
    return len(answer.json()["data"]["result"])


# -- the extender --------------------------------------------------------------------
def forecast_metrics(cluster: LocalCluster) -> dict[str, float]:
    wanted = {
        "scheduler_extender_forecast_age_seconds",
        "scheduler_extender_forecast_stale",
        "scheduler_extender_forecast_source_up",
    }
    text = httpx.get(cluster.extender_endpoint.metrics_url, timeout=5.0).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted
    }


def forecast_age(cluster: LocalCluster) -> float:
    return forecast_metrics(cluster)["scheduler_extender_forecast_age_seconds"]


def fitted_agents(cluster: LocalCluster) -> int:
    checks = httpx.get(cluster.extender_endpoint.readyz_url, timeout=5.0).json()["checks"]
    agents: int = checks["forecast"]["agents"]
    return agents


# -- the workload --------------------------------------------------------------------
@dataclass
class PodFeeder:
    """Creates a GPU pod every ``POD_INTERVAL`` seconds whenever ``feed`` is called (every
    wait of the test calls it), and remembers the phase each pod was created in."""

    api: client.ApiClient
    pool: NodePool
    namespace: str
    phase: str = "before"
    created: dict[str, list[str]] = field(default_factory=dict)
    _last: float = -math.inf

    @property
    def total(self) -> int:
        return sum(len(names) for names in self.created.values())

    def feed(self) -> None:
        if time.monotonic() - self._last >= POD_INTERVAL:
            self.create(1)

    def create(self, count: int) -> None:
        assert self.total + count <= self.pool.gpus, "the scenario outlasted the pool's GPUs"
        self._last = time.monotonic()
        names = [f"{self.phase}-{len(self.created.get(self.phase, [])) + i}" for i in range(count)]
        workload.create_pods(
            self.api,
            [
                self.pool.pod(name, namespace=self.namespace, agent=f"agent-{(self.total + i) % AGENTS}")
                for i, name in enumerate(names)
            ],
        )  # fmt: skip
        self.created.setdefault(self.phase, []).extend(names)

    def unbound(self, phase: str) -> list[str]:
        names = {p["metadata"]["name"] for p in bound(list_pods(self.api, self.namespace))}
        return [name for name in self.created.get(phase, []) if name not in names]

    def while_waiting(self, probe: Callable[[], T | None]) -> Callable[[], T | None]:
        def fed() -> T | None:
            self.feed()
            return probe()

        return fed


def wait_bound(feeder: PodFeeder, phase: str) -> int:
    """Waits until every pod of ``phase`` is bound (feeding meanwhile); returns how many."""
    wait_for(
        f"the pods created {phase} to be bound",
        feeder.while_waiting(lambda: not feeder.unbound(phase)),
        timeout=60,
        interval=0.5,
    )
    return len(feeder.created[phase])


# -- the scenario --------------------------------------------------------------------
@pytest.fixture
def source(tmp_path: Path) -> Iterator[TrafficStack]:
    workdir = tmp_path / "source"
    workdir.mkdir()
    try:
        stack = start_traffic_stack(workdir, AgentTraffic(zipf_rates(AGENTS, 40.0)), history=1200.0)
    except PrometheusMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield stack
    stack.stop()


@pytest.fixture
def evaluator(tmp_path: Path, cluster: LocalCluster) -> Iterator[RuleEvaluator]:
    rule = shortened(chart_rule(ALERT), THRESHOLD)
    target = f"127.0.0.1:{cluster.extender_endpoint.port}"
    server = RuleEvaluator(tmp_path / "evaluator", target, [rule])
    try:
        server.start()
    except PrometheusMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


def test_prometheus_killed_and_restarted_under_load(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    source: TrafficStack,
    evaluator: RuleEvaluator,
) -> None:
    cluster = reconfigurable_cluster
    cluster.start_extender(
        env={
            **cluster.options.extender_env,
            **EXTENDER_ENV,
            "SCHEDULER_EXTENDER_PROMETHEUS__URL": source.url,
        },
        args=cluster.options.extender_args,
    )
    wait_for("a forecast of every agent", lambda: fitted_agents(cluster) == AGENTS, timeout=60)
    node_pool.add(NODES, gpus=GPUS_PER_NODE)
    wait_for(
        "the evaluator to scrape the extender's first forecast",
        lambda: evaluator.holds("scheduler_extender_forecast_last_success_timestamp_seconds > 0"),
        timeout=60,
    )
    # Until its first refresh the extender exports a last success at 0, which may have made
    # the alert pending for a moment: wait for a settled, healthy state.
    wait_for("the alert to be inactive", lambda: alert_state(evaluator) == "inactive", timeout=30)
    feeder = PodFeeder(api, node_pool, namespace)
    feeder.create(4)
    wait_bound(feeder, "before")
    assert alert_state(evaluator) == "inactive"
    assert forecast_age(cluster) < THRESHOLD / 2

    # Kill the source while a batch of pods is being scheduled.
    feeder.phase = "outage"
    feeder.create(4)
    kill(source.server)
    killed = time.monotonic()
    killed_at = time.time()
    ages = [forecast_age(cluster)]

    def aged() -> bool:
        ages.append(forecast_age(cluster))
        return ages[-1] > THRESHOLD

    wait_for(f"{ALERT} to fire", feeder.while_waiting(lambda: alert_state(evaluator) == "firing"),
             timeout=120, interval=0.5)  # fmt: skip
    fired_after = time.monotonic() - killed
    # The alert compares the data end of the last refresh, up to a step older than the
    # fit itself: the age the extender reports crosses the threshold about then.
    wait_for("the forecast age to pass the threshold", feeder.while_waiting(aged), timeout=30)
    assert ages == sorted(ages), ages  # the age only grows while Prometheus is away
    during = forecast_metrics(cluster)
    assert during["scheduler_extender_forecast_stale"] == 1.0
    assert during["scheduler_extender_forecast_source_up"] == 0.0
    # Still without Prometheus: every pod created since the kill gets bound.
    feeder.create(2)
    bound_during_outage = wait_bound(feeder, "outage")
    assert not source.server.running()

    feeder.phase = "after"
    restarted = time.monotonic()
    restart(source.server)
    # Same data directory: the live scrapes of the seconds before the kill were kept.
    assert series_at(source.server, "agent_requests_total[5s]", killed_at - 1.0) == AGENTS
    wait_for(
        f"{ALERT} to resolve",
        feeder.while_waiting(lambda: alert_state(evaluator) == "inactive"),
        timeout=90,
        interval=0.5,
    )
    resolved_after = time.monotonic() - restarted
    after = forecast_metrics(cluster)
    assert after["scheduler_extender_forecast_age_seconds"] < THRESHOLD, after
    assert after["scheduler_extender_forecast_stale"] == 0.0
    assert after["scheduler_extender_forecast_source_up"] == 1.0
    assert fitted_agents(cluster) == AGENTS
    feeder.create(2)
    wait_bound(feeder, "after")
    assert overallocated(api) == {}

    record("prometheus restart", "alert firing after the kill (s)", round(fired_after, 1))
    record("prometheus restart", "pods bound during the outage", bound_during_outage)
    record(
        "prometheus restart", "alert resolved after the restart began (s)", round(resolved_after, 1)
    )
