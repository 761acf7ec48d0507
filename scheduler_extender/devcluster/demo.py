"""The demo scenario of ``make demo``: the whole loop on the local control plane.

``Demo`` runs, beside a ``LocalCluster`` (whose extender it configures):

* a traffic generator (``TrafficExporter`` over ``DemoTraffic``): per-agent request
  rates with a Zipf-skewed mean and a compressed "day" (``Timeline.season``) whose
  phase differs per agent, so the ranking shifts; one agent (``RAMP_AGENT``) ramps
  up steeply, peaking a few minutes after the start;
* a real Prometheus (the binary ``make tools`` built) with hours of that traffic
  backfilled (``promtool tsdb create-blocks-from openmetrics``), scraping the
  generator, the extender, the AgentAutoscaler controller and kube-scheduler, and
  evaluating the chart's alerting rules;
* the extender reading its popularity from that Prometheus, with the background
  packer on (in dry run until the rescue is executed);
* ``scheduler-extender controller`` and one AgentAutoscaler per demo agent (mode
  Auto), which scales the agents' Deployments ahead of the forecast load;
* a packing rescue: two 8-GPU nodes reserved for batch work each run one 4-GPU
  low-priority pod, so an 8-GPU high-priority pod (whose PriorityClass never
  preempts) cannot be placed. The packer first plans in dry run (a
  ``PackingDryRun`` Event), then, restarted to execute, moves one pod and the
  large pod is placed (``PackingPlan`` Event);
* shared GPUs through DRA: two nodes whose four L4 GPUs the fake DRA driver
  publishes as devices with a shareable ``memory`` capacity (and no
  ``nvidia.com/gpu``), and a Deployment whose replicas each claim a 6Gi share
  (a ResourceClaimTemplate; kube-controller-manager makes the claims,
  kube-scheduler allocates them, the extender scores the nodes);
* ``scheduler-extender dashboards --every 60``: the chart's Grafana dashboards as PNGs.

``Demo.observe()`` gathers what the terminal summary shows; ``Demo.report()`` what the
e2e test asserts on. Everything stops with ``Demo.stop()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client

from scheduler_extender.devcluster import dra, nodes, workload
from scheduler_extender.devcluster import prometheus as prom
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.controller import start_controller
from scheduler_extender.devcluster.paths import repo_root
from scheduler_extender.devcluster.processes import ManagedProcess, free_port, wait_until

log = logging.getLogger(__name__)

NAMESPACE = "agents"
BATCH_NAMESPACE = "batch"
RAMP_AGENT = "agent-01"
TARGET_PER_REPLICA = 10.0  # requests/s one replica serves
# Means (requests/s, Zipf-like), the relative amplitude of the daily cycle and its phase
# (in fractions of a day): agent-01 swings hardest and peaks when agent-00 is at its low.
AGENTS: Mapping[str, tuple[float, float, float]] = {
    "agent-00": (70.0, 0.3, 0.5),
    "agent-01": (50.0, 0.75, 0.0),
    "agent-02": (30.0, 0.3, 0.25),
    "agent-03": (20.0, 0.3, 0.75),
    "agent-04": (14.0, 0.3, 0.1),
    "agent-05": (10.0, 0.3, 0.6),
}
GPUS_PER_REPLICA: Mapping[str, int] = {"agent-02": 2, "agent-05": 2}
QUERY = f"sum by (agent) (rate({prom.METRIC}_total[15s]))"
POOL_LABEL = "demo.scheduler-extender.io/pool"
BATCH_POOL = "batch"
HIGH_CLASS, LOW_CLASS = "demo-batch-high", "demo-batch-low"
LARGE_POD = "trainer"
# Shared GPUs through DRA: SHARED_REPLICAS pods, each with a SHARE of one SHARED_PRODUCT GPU.
SHARED_NAMESPACE = "shared"
SHARED_POOL = "shared"
SHARED_DEPLOYMENT = "shared-inference"
SHARED_PRODUCT = "NVIDIA-L4"
SHARED_GPUS = 4  # per node, two nodes
SHARE = "6Gi"
SHARED_REPLICAS = 6


def crd_file() -> Path:
    return repo_root() / "deploy" / "crds" / "agentautoscalers.scheduler-extender.io.yaml"


def rules_file() -> Path:
    """The chart's alerting rules (it has no recording rules)."""
    return repo_root() / "helm" / "scheduler-extender" / "alerts" / "scheduler-extender.rules.yaml"


DASHBOARD_EVERY = 60.0
HISTORY_INTERVAL = 2.0  # seconds between backfilled samples


@dataclass(frozen=True)
class Timeline:
    """When things happen, in seconds. ``make demo`` uses ``FULL``, the e2e test ``SHORT``."""

    season: float  # one compressed "day" of traffic
    warm_up: float  # from the traffic's start to the ramp agent's lowest rate
    history: float  # backfilled before Prometheus starts
    rescue_at: float  # from the workload's placement to the large pod's arrival
    dry_run_for: float  # how long the packer only plans before it is allowed to act
    lead_time: float = 30.0  # the AgentAutoscalers' spec.leadTime

    @property
    def ramp_peak(self) -> float:
        """From the traffic's start to the ramp agent's peak."""
        return self.warm_up + self.season / 2


FULL = Timeline(season=480.0, warm_up=45.0, history=3 * 3600.0, rescue_at=45.0, dry_run_for=30.0)
SHORT = Timeline(season=240.0, warm_up=40.0, history=3 * 3600.0, rescue_at=20.0, dry_run_for=15.0)


# Short wobbles on top of the daily cycle (period in seconds, relative amplitude): no day
# repeats the one before exactly, as in real traffic (and the backtest's MASE, which
# divides by the seasonal naive forecast's error, stays finite).
WOBBLES: tuple[tuple[float, float], ...] = ((37.0, 0.05), (113.0, 0.07))


@dataclass(frozen=True)
class DemoTraffic(prom.AgentTraffic):
    """Each agent's mean times a daily sine with an amplitude and phase of its own, plus
    ``WOBBLES``; the day starts at ``offset`` (wall-clock seconds)."""

    amplitudes: Mapping[str, float] = field(default_factory=dict)
    phases: Mapping[str, float] = field(default_factory=dict)  # fractions of a day
    offset: float = 0.0

    def _waves(self, agent: str) -> list[tuple[float, float, float]]:
        """(amplitude, angular frequency, phase) of every sine in the agent's rate."""
        phase = 2 * math.pi * self.phases.get(agent, 0.0)
        day = 2 * math.pi / self.period
        waves = [(self.amplitudes.get(agent, self.amplitude), day, phase - day * self.offset)]
        salt = sum(map(ord, agent))  # each agent wobbles out of step with the others
        waves += [
            (amp, 2 * math.pi / period, salt * (i + 1.0)) for i, (period, amp) in enumerate(WOBBLES)
        ]
        return waves

    def rate(self, agent: str, at: float) -> float:
        wave = sum(a * math.sin(w * at + p) for a, w, p in self._waves(agent))
        return self.means[agent] * (1.0 + wave)

    def count(self, agent: str, at: float) -> float:
        """The integral of ``rate`` from 0 to ``at``."""
        waves = sum(a * (math.cos(p) - math.cos(w * at + p)) / w for a, w, p in self._waves(agent))
        return self.means[agent] * (at + waves)


def demo_traffic(timeline: Timeline, started: float) -> DemoTraffic:
    """The ramp agent's day starts so that its lowest rate comes ``warm_up`` s after ``started``
    (sin is lowest three quarters into its period)."""
    trough = started + timeline.warm_up
    return DemoTraffic(
        means={a: m for a, (m, _, _) in AGENTS.items()},
        period=timeline.season,
        amplitudes={a: amp for a, (_, amp, _) in AGENTS.items()},
        phases={a: phase for a, (_, _, phase) in AGENTS.items()},
        offset=trough - 0.75 * timeline.season,
    )


def replicas_needed(rate: float) -> int:
    return max(1, math.ceil(rate / TARGET_PER_REPLICA))


def forecast_env(
    prometheus_url: str, timeline: Timeline, *, step: float, history_seasons: int = 3
) -> dict[str, str]:
    """The forecaster's settings for a compressed day (extender and controller alike)."""
    return {
        "SCHEDULER_EXTENDER_PROMETHEUS__URL": prometheus_url,
        "SCHEDULER_EXTENDER_PROMETHEUS__QUERY": QUERY,
        "SCHEDULER_EXTENDER_PROMETHEUS__STEP": f"{step:g}s",
        "SCHEDULER_EXTENDER_PROMETHEUS__SEASON": f"{timeline.season:g}s",
        "SCHEDULER_EXTENDER_PROMETHEUS__HISTORY": f"{history_seasons * timeline.season:g}s",
        "SCHEDULER_EXTENDER_PROMETHEUS__HORIZON": f"{timeline.lead_time * 2:g}s",
        "SCHEDULER_EXTENDER_PROMETHEUS__MAX_AGE": f"{timeline.season:g}s",
        "SCHEDULER_EXTENDER_PROMETHEUS__REFRESH_INTERVAL": "10s",
        "SCHEDULER_EXTENDER_PROMETHEUS__CORRECTION_INTERVAL": "2s",
    }


def extender_env(prometheus_url: str, timeline: Timeline, *, dry_run: bool) -> dict[str, str]:
    return {
        **forecast_env(prometheus_url, timeline, step=5.0, history_seasons=8),
        # JSON at debug level: the summary reads each policy's share of the scores from it.
        "SCHEDULER_EXTENDER_LOG_LEVEL": "DEBUG",
        "SCHEDULER_EXTENDER_LOG_FORMAT": "json",
        "SCHEDULER_EXTENDER_DEBUG_ENDPOINTS": "true",
        "SCHEDULER_EXTENDER_PACKER__ENABLED": "true",
        "SCHEDULER_EXTENDER_PACKER__DRY_RUN": "true" if dry_run else "false",
        "SCHEDULER_EXTENDER_PACKER__LEADER_ELECT": "false",
        "SCHEDULER_EXTENDER_PACKER__INTERVAL": "1s",
        "SCHEDULER_EXTENDER_PACKER__DEBOUNCE": "2s",
        "SCHEDULER_EXTENDER_PACKER__MIN_INTERVAL": "5s",
        "SCHEDULER_EXTENDER_PACKER__EVICTIONS_PER_MINUTE": "60",
    }


def _gpus(agent: str) -> int:
    return GPUS_PER_REPLICA.get(agent, 1)


def agent_autoscaler(agent: str, timeline: Timeline) -> dict[str, Any]:
    return {
        "apiVersion": "scheduler-extender.io/v1alpha1",
        "kind": "AgentAutoscaler",
        "metadata": {"name": agent, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": agent},
            "agent": agent,
            "minReplicas": 1,
            "maxReplicas": 12,
            "targetRequestsPerReplica": TARGET_PER_REPLICA,
            "leadTime": f"{timeline.lead_time:g}s",
            "quantile": 0.9,
            "mode": "Auto",
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
        },
    }


def batch_placement() -> dict[str, Any]:
    return {
        "node_selector": {POOL_LABEL: BATCH_POOL},
        "tolerations": [
            {"key": POOL_LABEL, "operator": "Equal", "value": BATCH_POOL, "effect": "NoSchedule"}
        ],
    }


def batch_deployment(name: str, scheduler_name: str) -> dict[str, Any]:
    """One 4-GPU low-priority replica on the batch pool (movable: it has an owner)."""
    spec = workload.pod_spec(scheduler_name=scheduler_name, gpus=4, **batch_placement())
    spec["priorityClassName"] = LOW_CLASS
    labels = {"app": name, "tier": "batch-low"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": BATCH_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def large_pod(scheduler_name: str) -> dict[str, Any]:
    pod = workload.gpu_pod(
        LARGE_POD, namespace=BATCH_NAMESPACE, scheduler_name=scheduler_name, gpus=8,
        labels={"tier": "batch-high"}, **batch_placement(),
    )  # fmt: skip
    pod["spec"]["priorityClassName"] = HIGH_CLASS
    return pod


def priority_classes() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            # Never preempts: only the packer can make room.
            "preemptionPolicy": "Never",
        }
        for name, value in ((HIGH_CLASS, 100_000), (LOW_CLASS, 1_000))
    ]


def shared_deployment(scheduler_name: str) -> dict[str, Any]:
    """SHARED_REPLICAS pods, each with its own claim (from a template) on a SHARE of a GPU."""
    labels = {"app.kubernetes.io/name": SHARED_DEPLOYMENT}
    template: dict[str, Any] = {
        "metadata": {"labels": labels},
        "spec": workload.pod_spec(scheduler_name=scheduler_name, gpus=0, cpu="1", memory="2Gi"),
    }
    dra.use_claim(template, template_name=SHARED_DEPLOYMENT)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": SHARED_DEPLOYMENT, "namespace": SHARED_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": SHARED_REPLICAS,
            "selector": {"matchLabels": labels},
            "template": template,
        },
    }


def shared_devices(api: client.ApiClient) -> dict[str, list[int]]:
    """``node/device`` -> the bytes of memory each allocation on it consumes, read from the
    shared pods' claims (what kube-scheduler allocated, not what the extender thinks)."""
    whole = dra.quantity(dra.MEMORY[SHARED_PRODUCT])
    out: dict[str, list[int]] = {}
    for _, pool, device, amount in dra.allocation_results(api, SHARED_NAMESPACE, "memory"):
        out.setdefault(f"{pool}/{device}", []).append(whole if amount is None else amount)
    return dict(sorted(out.items()))


def graph_links(prometheus_url: str) -> dict[str, str]:
    """Key queries as Prometheus URLs: ``/api/v1/query`` answers in any build (``make tools``'
    has no web UI); ``/graph?g0.expr=`` opens them in a Prometheus that has one."""
    queries = {
        "request rate per agent": QUERY,
        "forecast per agent (extender)": "scheduler_extender_forecast_requests_per_second",
        "desired replicas (autoscaler)": "scheduler_extender_autoscaler_desired_replicas",
        "extender decisions/s": "sum by (verb, outcome) (rate(scheduler_extender_decisions_total[1m]))",
        "packer runs": "sum by (outcome) (scheduler_extender_packer_runs_total)",
        "firing alerts": 'ALERTS{alertstate="firing"}',
    }
    return {
        name: f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        for name, q in queries.items()
    }


@dataclass
class AgentRow:
    agent: str
    rate: float | None  # requests/s now (Prometheus)
    forecast: float | None  # the extender's forecast (Prometheus)
    wanted: int | None  # the AgentAutoscaler's desiredReplicas
    replicas: int  # the Deployment's spec.replicas
    ready: int
    nodes: list[str]


@dataclass
class Decision:
    pod: str
    node: str
    score: float
    policies: dict[str, float]


@dataclass
class Observation:
    elapsed: float  # since the traffic started
    agents: list[AgentRow]
    decisions: list[Decision]
    packer_events: list[tuple[str, str]]  # (reason, message) of the large pod, oldest first
    large_pod_node: str | None
    firing_alerts: list[str]
    dashboards: list[Path]
    shared: dict[str, list[int]]  # node/device -> bytes each share on it consumes


@dataclass
class RampSample:
    at: float  # wall clock
    replicas: int
    rate: float  # the generator's true rate at ``at``


@dataclass
class Report:
    """What the e2e test checks (written as JSON by ``--report``)."""

    forecast: dict[str, Any] = field(default_factory=dict)  # the extender's /readyz details
    first_placement_seconds: float | None = None  # from the command's start
    ramp_agent: str = RAMP_AGENT
    ramp_peak: float = 0.0  # wall clock
    target_per_replica: float = TARGET_PER_REPLICA
    ramp: list[RampSample] = field(default_factory=list)
    packer_events: list[tuple[str, str]] = field(default_factory=list)
    large_pod_node: str | None = None
    dashboards: dict[str, list[str]] = field(default_factory=dict)  # png -> empty panels
    shared: dict[str, list[int]] = field(default_factory=dict)  # see ``shared_devices``
    shared_capacity: int = 0  # bytes of memory per shared GPU

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, default=str))


class Demo:
    """The scenario around a running ``LocalCluster``; ``start`` after the cluster's."""

    def __init__(
        self,
        cluster: LocalCluster,
        timeline: Timeline,
        workdir: Path,
        *,
        exporter: prom.TrafficExporter,
        prometheus_port: int,
        started: float,
        fleet: Sequence[nodes.FakeNode],
    ) -> None:
        self.cluster = cluster
        self.timeline = timeline
        self.workdir = workdir
        self.exporter = exporter
        self.server = prom.PrometheusServer(
            workdir / "prometheus", {}, port=prometheus_port, rule_files=[rules_file()]
        )
        self.started = started  # wall clock: the traffic's start
        self.fleet = list(fleet)
        self.batch = nodes.fleet(2, 8, prefix=BATCH_POOL)
        # No nvidia.com/gpu on these: their GPUs are DRA devices only.
        self.shared = [nodes.FakeNode(f"{SHARED_POOL}-{i}", 0, i) for i in range(2)]
        self.controller_port = free_port()
        self.controller: ManagedProcess | None = None
        self.renderer: ManagedProcess | None = None
        self.dashboards_dir = workdir / "dashboards"
        self.report = Report(ramp_peak=started + timeline.ramp_peak)
        self.placed_at: float | None = None  # wall clock: the agents' replicas all bound
        # waiting, dry-run, restarting the extender to execute, executing, done
        self.rescue_stage = "waiting"
        self._stage_since = 0.0

    # -- the pieces ------------------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        api = self.cluster.api_client()
        nodes.create_nodes(api, self.fleet)
        nodes.create_nodes(
            api, self.batch, labels={POOL_LABEL: BATCH_POOL},
            taints=[{"key": POOL_LABEL, "value": BATCH_POOL, "effect": "NoSchedule"}],
        )  # fmt: skip
        self._publish_shared_gpus(api)
        self._start_prometheus()
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_file()))
        self.cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/agentautoscalers.scheduler-extender.io",
        )  # fmt: skip
        self._start_controller()
        self._start_renderer()
        names = [n.name for n in [*self.fleet, *self.batch, *self.shared]]
        nodes.wait_schedulable(api, names, alive=self.cluster.check_alive)
        self._fragment_batch_pool(api)
        self.wait_for_forecast()

    def _publish_shared_gpus(self, api: client.ApiClient) -> None:
        labels = {POOL_LABEL: SHARED_POOL, nodes.GPU_PRODUCT_LABEL: SHARED_PRODUCT}
        nodes.create_nodes(api, self.shared, labels=labels)
        dra.publish(api, ())  # the fake driver's DeviceClasses
        for node in self.shared:
            dra.put_slice(api, dra.slice_manifest(node.name, SHARED_GPUS, labels))
        self.report.shared_capacity = dra.quantity(dra.MEMORY[SHARED_PRODUCT])

    def stop(self) -> None:
        for process in (self.renderer, self.controller):
            if process is not None:
                process.stop()
        self.server.stop()
        self.exporter.stop()

    def _start_prometheus(self) -> None:
        history = self.workdir / "history.om"
        now = time.time()
        prom.write_history(
            history, self.exporter.traffic, start=now - self.timeline.history, end=now - 1.0,
            interval=HISTORY_INTERVAL, instance=self.exporter.address,
        )  # fmt: skip
        scheduler_port = self.cluster.health_port("kube-scheduler")
        self.server.targets = {
            prom.JOB: self.exporter.address,
            "extender": f"127.0.0.1:{self.cluster.extender_endpoint.port}",
            "controller": f"127.0.0.1:{self.controller_port}",
        }
        self.server.history = history
        self.server.scrape_configs = [
            {
                "job_name": "kube-scheduler",
                "scheme": "https",
                "tls_config": {"insecure_skip_verify": True},
                "static_configs": [{"targets": [f"127.0.0.1:{scheduler_port}"]}],
            }
        ]
        self.server.start()

    def _start_controller(self) -> None:
        env = {
            **forecast_env(self.server.url, self.timeline, step=2.0),
            "SCHEDULER_EXTENDER_CONTROLLER__FORECAST_REFRESH": "4s",
        }
        self.controller = start_controller(
            self.cluster.kubeconfig, self.server.url, self.cluster.logs_dir / "controller.log",
            port=self.controller_port, namespace=NAMESPACE, env=env,
        )  # fmt: skip

    def _start_renderer(self) -> None:
        self.renderer = ManagedProcess(
            "dashboards",
            [sys.executable, "-m", "scheduler_extender.cli", "dashboards",
             "--prometheus", self.server.url, "--out-dir", str(self.dashboards_dir),
             "--minutes", "30", "--rate-interval", "1m", "--every", f"{DASHBOARD_EVERY:g}"],
            self.cluster.logs_dir / "dashboards.log",
        )  # fmt: skip

    def wait_for_forecast(self, timeout: float = 90.0) -> None:
        """Until the extender has fitted a forecast of every agent from Prometheus."""

        def ready() -> bool:
            details = self.forecast_status()
            if details.get("source") == "prometheus" and details.get("agents", 0) >= len(AGENTS):
                self.report.forecast = details
                return True
            return False

        wait_until("the extender's first forecast from Prometheus", ready, timeout=timeout,
                   interval=0.5)  # fmt: skip

    def forecast_status(self) -> dict[str, Any]:
        try:
            body = httpx.get(self.cluster.extender_endpoint.readyz_url, timeout=2.0).json()
        except (httpx.HTTPError, ValueError):
            return {}
        details: dict[str, Any] = body.get("checks", {}).get("forecast", {})
        return details

    def _fragment_batch_pool(self, api: client.ApiClient) -> None:
        """One 4-GPU low-priority pod on each of the two batch nodes (the second node is
        cordoned while the first pod is placed, then uncordoned)."""
        scheduling = client.SchedulingV1Api(api)
        for priority_class in priority_classes():
            body: Any = priority_class  # the client's models accept plain dicts
            with contextlib.suppress(client.ApiException):
                scheduling.create_priority_class(body)
        workload.ensure_namespace(api, BATCH_NAMESPACE)
        apps = client.AppsV1Api(api)
        first = None
        for name in ("prep-a", "prep-b"):
            deployment: Any = batch_deployment(name, self.cluster.scheduler_name)
            apps.create_namespaced_deployment(BATCH_NAMESPACE, deployment)
            node = self._wait_bound(api, BATCH_NAMESPACE, name)
            if first is None:
                first = node
                nodes.cordon(api, node, True)
        assert first is not None
        nodes.cordon(api, first, False)
        log.info("batch pool %s: one 4-GPU pod on each node", [n.name for n in self.batch])

    def _wait_bound(self, api: client.ApiClient, namespace: str, prefix: str) -> str:
        found: list[str] = []

        def bound() -> bool:
            for pod in _pods(api, namespace):
                if pod["metadata"]["name"].startswith(prefix) and pod["spec"].get("nodeName"):
                    found.append(pod["spec"]["nodeName"])
                    return True
            return False

        wait_until(f"a pod of {namespace}/{prefix} to be placed", bound, timeout=60, interval=0.25)
        return found[0]

    # -- the workload ------------------------------------------------------------------
    def deploy_agents(self) -> None:
        api = self.cluster.api_client()
        workload.ensure_namespace(api, NAMESPACE)
        traffic = self.exporter.traffic
        now = time.time()
        agents = [
            workload.Agent(name, round(traffic.rate(name, now), 3),
                           replicas_needed(traffic.rate(name, now)), _gpus(name))
            for name in AGENTS
        ]  # fmt: skip
        workload.create_deployments(
            api,
            (
                workload.agent_deployment(
                    a, namespace=NAMESPACE, scheduler_name=self.cluster.scheduler_name
                )
                for a in agents
            ),
        )
        manifests = [agent_autoscaler(a, self.timeline) for a in AGENTS]
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
        workload.ensure_namespace(api, SHARED_NAMESPACE)
        request = dra.device_request(capacity={"memory": SHARE})
        template: Any = dra.claim_template(SHARED_DEPLOYMENT, SHARED_NAMESPACE, request)
        client.ResourceV1Api(api).create_namespaced_resource_claim_template(
            SHARED_NAMESPACE, template
        )
        workload.create_deployments(api, [shared_deployment(self.cluster.scheduler_name)])

    def wait_placed(self, timeout: float = 90.0) -> None:
        api = self.cluster.api_client()

        def all_bound() -> bool:
            pods = _pods(api, NAMESPACE)
            return bool(pods) and all(p["spec"].get("nodeName") for p in pods)

        wait_until("the agents' replicas to be placed", all_bound, timeout=timeout, interval=0.25)
        self.placed_at = time.time()

    # -- the loop's steps ---------------------------------------------------------------
    def tick(self) -> None:
        """Advances the rescue and samples the ramp agent; call about every second."""
        self.cluster.check_alive()
        for process in (self.controller, self.renderer):
            if process is not None:
                process.check_running()
        now = time.time()
        api = self.cluster.api_client()
        replicas = _spec_replicas(api, NAMESPACE, RAMP_AGENT)
        if replicas is not None:
            rate = self.exporter.traffic.rate(RAMP_AGENT, now)
            self.report.ramp.append(RampSample(now, replicas, rate))
        self._advance_rescue(api, now)

    def _advance_rescue(self, api: client.ApiClient, now: float) -> None:
        if self.placed_at is None:
            return
        stage = self.rescue_stage
        if stage == "waiting" and now >= self.placed_at + self.timeline.rescue_at:
            workload.create_pods(api, [large_pod(self.cluster.scheduler_name)])
            self._set_stage("dry-run", now)
        elif stage == "dry-run" and now >= self._stage_since + self.timeline.dry_run_for:
            if "PackingDryRun" in {r for r, _ in self.large_pod_events(api)}:
                # Announced one tick ahead: the restart blocks for the extender's start.
                self._set_stage("restarting the extender to execute", now)
        elif stage.startswith("restarting"):
            self.cluster.start_extender(
                env=extender_env(self.server.url, self.timeline, dry_run=False)
            )
            self._set_stage("executing", time.time())
        elif stage == "executing" and self.large_pod_node(api):
            self._set_stage("done", now)

    def _set_stage(self, stage: str, now: float) -> None:
        log.info("rescue: %s", stage)
        self.rescue_stage = stage
        self._stage_since = now

    def large_pod_events(self, api: client.ApiClient) -> list[tuple[str, str]]:
        raw: Any = client.CoreV1Api(api).list_namespaced_event(
            BATCH_NAMESPACE,
            field_selector=f"involvedObject.kind=Pod,involvedObject.name={LARGE_POD}",
            _preload_content=False,
        )
        items = json.loads(raw.data)["items"]
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [(e["reason"], e.get("message", "")) for e in items]

    def large_pod_node(self, api: client.ApiClient) -> str | None:
        for pod in _pods(api, BATCH_NAMESPACE):
            if pod["metadata"]["name"] == LARGE_POD:
                node: str | None = pod["spec"].get("nodeName")
                return node
        return None

    def observe(self) -> Observation:
        api = self.cluster.api_client()
        rates = self._instant(QUERY)
        forecasts = self._instant(
            "max by (agent) (scheduler_extender_forecast_requests_per_second)"
        )
        wanted = _desired_replicas(api)
        deployments = _deployments(api)
        by_agent: dict[str, list[str]] = {a: [] for a in AGENTS}
        for pod in _pods(api, NAMESPACE):
            agent = pod["metadata"].get("labels", {}).get(workload.AGENT_LABEL)
            node = pod["spec"].get("nodeName")
            if agent in by_agent and node:
                by_agent[agent].append(node)
        rows = [
            AgentRow(
                agent, rates.get(agent), forecasts.get(agent), wanted.get(agent),
                deployments.get(agent, (0, 0))[0], deployments.get(agent, (0, 0))[1],
                sorted(by_agent[agent]),
            )
            for agent in AGENTS
        ]  # fmt: skip
        alerts = self._instant('count by (alertname) (ALERTS{alertstate="firing"})')
        events = self.large_pod_events(api)
        return Observation(
            elapsed=time.time() - self.started,
            agents=rows,
            decisions=last_decisions(self.cluster.logs_dir / "extender.log"),
            packer_events=events,
            large_pod_node=self.large_pod_node(api),
            firing_alerts=sorted(alerts),
            dashboards=sorted(self.dashboards_dir.glob("*.png")),
            shared=shared_devices(api),
        )

    def _instant(self, query: str) -> dict[str, float]:
        """label value of ``agent`` (or ``alertname``) -> value."""
        try:
            body = httpx.get(
                f"{self.server.url}/api/v1/query", params={"query": query}, timeout=5.0
            ).json()
        except (httpx.HTTPError, ValueError):
            return {}
        out: dict[str, float] = {}
        for result in body.get("data", {}).get("result", []):
            metric = result.get("metric", {})
            key = metric.get("agent") or metric.get("alertname") or ""
            out[key] = float(result["value"][1])
        return out

    def finish(self) -> Report:
        """The last observations, and a final rendering of every dashboard, into the report."""
        from scheduler_extender.devcluster import dashboards

        api = self.cluster.api_client()
        self.report.packer_events = self.large_pod_events(api)
        self.report.large_pod_node = self.large_pod_node(api)
        self.report.shared = shared_devices(api)
        rendered = dashboards.render_all(
            self.server.url, self.dashboards_dir, minutes=15, rate_interval="1m"
        )
        self.report.dashboards = {str(r.path): list(r.empty) for r in rendered}
        return self.report


def last_decisions(extender_log: Path, count: int = 5) -> list[Decision]:
    """The extender's last scored pods: the best node of each and every policy's share.

    Read from its JSON debug log (``score <pod> -> <node>`` records, best node first)."""
    try:
        with extender_log.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 512 * 1024))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    best: dict[str, Decision] = {}
    order: list[str] = []
    previous: str | None = None
    for line in lines:
        if '"score"' not in line or not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        pod, node = entry.get("pod"), entry.get("node")
        if not isinstance(pod, str) or not isinstance(node, str) or "policies" not in entry:
            continue
        if pod != previous:  # the first record of a call is its best node
            best[pod] = Decision(pod, node, float(entry.get("score", 0)), dict(entry["policies"]))
            if pod in order:
                order.remove(pod)
            order.append(pod)
        previous = pod
    return [best[p] for p in order[-count:]]


def _pods(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    raw: Any = client.CoreV1Api(api).list_namespaced_pod(namespace, _preload_content=False)
    pods: list[dict[str, Any]] = json.loads(raw.data)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _spec_replicas(api: client.ApiClient, namespace: str, name: str) -> int | None:
    try:
        raw: Any = client.AppsV1Api(api).read_namespaced_deployment(
            name, namespace, _preload_content=False
        )
    except client.ApiException:
        return None
    return int(json.loads(raw.data)["spec"].get("replicas") or 0)


def _deployments(api: client.ApiClient) -> dict[str, tuple[int, int]]:
    """name -> (spec.replicas, status.readyReplicas) in the agents' namespace."""
    raw: Any = client.AppsV1Api(api).list_namespaced_deployment(NAMESPACE, _preload_content=False)
    return {
        d["metadata"]["name"]: (
            int(d["spec"].get("replicas") or 0),
            int(d.get("status", {}).get("readyReplicas") or 0),
        )
        for d in json.loads(raw.data)["items"]
    }


def _desired_replicas(api: client.ApiClient) -> dict[str, int]:
    try:
        raw: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "scheduler-extender.io", "v1alpha1", NAMESPACE, "agentautoscalers",
            _preload_content=False,
        )  # fmt: skip
    except client.ApiException:
        return {}
    out: dict[str, int] = {}
    for item in json.loads(raw.data)["items"]:
        desired = item.get("status", {}).get("desiredReplicas")
        if desired is not None:
            out[item["spec"]["agent"]] = int(desired)
    return out
