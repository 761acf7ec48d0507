"""A real Prometheus on 127.0.0.1 with days of synthetic agent traffic, for tests and the demo.

Three pieces:

* ``AgentTraffic``: Zipf-skewed per-agent request rates with a daily cycle, a
  pure function of time, so history and live traffic agree;
* ``TrafficExporter``: a prometheus-client HTTP endpoint serving
  ``agent_requests_total{agent=...}``, advanced by a background thread;
* ``PrometheusServer``: the ``prometheus`` binary ``make tools`` built scraping the exporter.
  Days of history need not take days: ``write_history`` writes them as
  OpenMetrics and ``promtool tsdb create-blocks-from openmetrics`` turns them
  into TSDB blocks before the server starts; live scrapes then continue the
  same series (same ``job`` and ``instance`` labels, counters carried on).

``start_traffic_stack`` puts the three together.

The binaries are built from Prometheus' Go module, pinned by
``hack/tools/prometheus/go.mod``, into the tools cache by ``make tools``
(``hack/build-tools.sh``); without them ``PrometheusMissingError`` says so.
That build has no web UI (its assets are not in the Go module): the HTTP API
(``/api/v1/...``) is all there is.
"""

from __future__ import annotations

import math
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from wsgiref.simple_server import WSGIServer

import httpx
import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from scheduler_extender.devcluster.processes import (
    ComponentFailedError,
    ManagedProcess,
    Started,
    free_port,
    wait_until,
)
from scheduler_extender.devcluster.tools import ToolsMissingError, locate_prometheus

METRIC = "agent_requests"  # exposed as agent_requests_total
JOB = "agent-traffic"


class PrometheusMissingError(ToolsMissingError):
    """The prometheus or promtool binary is not in the tools cache."""


def binaries() -> tuple[Path, Path]:
    """Paths of ``prometheus`` and ``promtool`` in the tools cache."""
    try:
        return locate_prometheus()
    except ToolsMissingError as exc:
        raise PrometheusMissingError(str(exc)) from None


def zipf_rates(agents: int, total: float, exponent: float = 1.1) -> Mapping[str, float]:
    """Mean requests/s of ``agent-0`` (the hottest) .. ``agent-<n-1>``, summing to ``total``."""
    weights = [1.0 / (rank + 1) ** exponent for rank in range(agents)]
    scale = total / sum(weights)
    return MappingProxyType({f"agent-{i}": w * scale for i, w in enumerate(weights)})


@dataclass(frozen=True)
class AgentTraffic:
    """Request rate of each agent over time: its mean times a daily sine."""

    means: Mapping[str, float]  # requests/s
    amplitude: float = 0.4  # of the daily cycle, relative to the mean
    period: float = 86400.0

    def rate(self, agent: str, at: float) -> float:
        return self.means[agent] * (1.0 + self.amplitude * math.sin(2 * math.pi * at / self.period))

    def count(self, agent: str, at: float) -> float:
        """Requests since the epoch: the integral of ``rate`` (a counter's value)."""
        mean, omega = self.means[agent], 2 * math.pi / self.period
        return mean * (at + self.amplitude * (1.0 - math.cos(omega * at)) / omega)


def write_history(
    path: Path,
    traffic: AgentTraffic,
    *,
    start: float,
    end: float,
    interval: float,
    instance: str,
    job: str = JOB,
) -> None:
    """``agent_requests_total`` of every agent from ``start`` to ``end`` as OpenMetrics,
    labelled as if ``job`` had scraped ``instance`` every ``interval`` seconds."""
    stamps = [start + i * interval for i in range(int((end - start) // interval) + 1)]
    with path.open("w") as out:
        out.write(f"# HELP {METRIC} Requests served per agent.\n# TYPE {METRIC} counter\n")
        for agent in sorted(traffic.means):
            labels = f'agent="{agent}",instance="{instance}",job="{job}"'
            out.writelines(
                f"{METRIC}_total{{{labels}}} {traffic.count(agent, t):.3f} {t:.3f}\n"
                for t in stamps
            )
        out.write("# EOF\n")


class TrafficExporter(Started):
    """Serves ``agent_requests_total`` following ``traffic`` in wall-clock time.

    ``boost(agent, factor)`` multiplies an agent's live rate (a burst) from now on.
    """

    def __init__(self, traffic: AgentTraffic, *, tick: float = 0.1) -> None:
        self.traffic = traffic
        self.port = free_port()
        self._tick = tick
        self._boost: dict[str, float] = {}
        self._stop = threading.Event()
        self._registry = CollectorRegistry()
        self._counter = Counter(
            METRIC, "Requests served per agent.", ["agent"], registry=self._registry
        )
        self._lock = threading.Lock()
        self._extra: dict[str, float] = dict.fromkeys(traffic.means, 0.0)  # boosted requests
        self._served: dict[str, float] = dict.fromkeys(traffic.means, 0.0)  # counter values
        self._thread: threading.Thread | None = None
        self._server: WSGIServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._advance(time.time(), time.time())
        server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self._registry)
        self._server = server
        self._thread = threading.Thread(target=self._run, name="traffic-exporter", daemon=True)
        self._thread.start()

    def boost(self, agent: str, factor: float) -> None:
        with self._lock:
            self._boost[agent] = factor

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None

    def _run(self) -> None:
        last = time.time()
        while not self._stop.wait(self._tick):
            now = time.time()
            self._advance(last, now)
            last = now

    def _advance(self, last: float, now: float) -> None:
        """Set every counter to its value at ``now`` (plus the boosted surplus)."""
        with self._lock:
            for agent in self.traffic.means:
                surplus = self._boost.get(agent, 1.0) - 1.0
                self._extra[agent] += surplus * (
                    self.traffic.count(agent, now) - self.traffic.count(agent, last)
                )
                target = self.traffic.count(agent, now) + self._extra[agent]
                self._counter.labels(agent).inc(max(target - self._served[agent], 0.0))
                self._served[agent] = max(target, self._served[agent])


@dataclass
class PrometheusServer(Started):
    """One Prometheus process on 127.0.0.1 scraping ``targets`` (job -> host:port)."""

    workdir: Path
    targets: Mapping[str, str]
    scrape_interval: float = 1.0
    history: Path | None = None  # OpenMetrics to backfill before starting
    port: int = field(default_factory=free_port)
    # More scrape_configs entries as Prometheus takes them (e.g. https targets).
    scrape_configs: Sequence[Mapping[str, Any]] = ()
    rule_files: Sequence[Path] = ()  # alerting and recording rules to evaluate
    _process: ManagedProcess | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self, timeout: float = 60.0) -> None:
        prometheus, promtool = binaries()
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if self.history is not None:
            backfill(promtool, self.history, data)
        config = self.workdir / "prometheus.yml"
        interval = f"{self.scrape_interval:g}s"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": interval, "evaluation_interval": interval},
                    "rule_files": [str(path) for path in self.rule_files],
                    "scrape_configs": [
                        *(
                            {"job_name": job, "static_configs": [{"targets": [address]}]}
                            for job, address in self.targets.items()
                        ),
                        *(dict(extra) for extra in self.scrape_configs),
                    ],
                }
            )
        )
        self._process = ManagedProcess(
            "prometheus",
            [
                str(prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=30d",
            ],
            self.log,
            port=self.port,
        )
        wait_until(f"Prometheus on {self.url}", self._ready, timeout=timeout, process=self._process)

    def wait_scraped(self, timeout: float = 30.0) -> None:
        """Until every target has been scraped successfully (Prometheus hands new
        targets to its scrapers only every 5 s, so this takes a few seconds)."""
        wait_until(
            f"Prometheus on {self.url} to scrape {sorted(self.targets.values())}",
            self._targets_up,
            timeout=timeout,
            interval=0.25,
            process=self._process,
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def _targets_up(self) -> bool:
        try:
            answer = httpx.get(f"{self.url}/api/v1/targets", timeout=1.0).json()
        except (httpx.HTTPError, ValueError):
            return False
        active = answer.get("data", {}).get("activeTargets", [])
        up = {t.get("scrapeUrl", "").split("/")[2] for t in active if t.get("health") == "up"}
        return set(self.targets.values()) <= up

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def backfill(promtool: Path, openmetrics: Path, data_dir: Path) -> None:
    """Turn an OpenMetrics file into TSDB blocks in ``data_dir``."""
    result = subprocess.run(
        [
            str(promtool),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(openmetrics),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ComponentFailedError(
            f"promtool could not backfill {openmetrics}: {result.stderr.strip() or result.stdout}"
        )


@dataclass
class TrafficStack:
    """A traffic exporter and a Prometheus scraping it; ``stop`` stops both."""

    traffic: AgentTraffic
    exporter: TrafficExporter
    server: PrometheusServer

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.exporter.stop()


def start_traffic_stack(
    workdir: Path,
    traffic: AgentTraffic,
    *,
    history: float,
    interval: float = 15.0,
    scrape_interval: float = 1.0,
) -> TrafficStack:
    """Exporter, ``history`` seconds backfilled every ``interval`` s (0: none), and a
    Prometheus that has scraped the exporter at least once."""
    exporter = TrafficExporter(traffic)
    exporter.start()
    backfilled = None
    if history > 0:
        backfilled = workdir / "history.om"
        now = time.time()
        write_history(
            backfilled, traffic, start=now - history, end=now - 1.0, interval=interval,
            instance=exporter.address,
        )  # fmt: skip
    server = PrometheusServer(
        workdir, {JOB: exporter.address}, scrape_interval=scrape_interval, history=backfilled
    )
    try:
        server.start()
        server.wait_scraped()
    except BaseException:
        server.stop()
        exporter.stop()
        raise
    return TrafficStack(traffic, exporter, server)
