"""The AgentAutoscaler controller on the real control plane, fed by a real Prometheus.

A synthetic exporter drives one agent's request rate along a "daily" sine
whose day lasts five minutes; Prometheus holds fifteen minutes of it
(backfilled with ``promtool tsdb create-blocks-from openmetrics``) and keeps
scraping. ``scheduler-extender controller`` runs as a process, leader-elected
through a Lease, with the forecaster's step, season and history shortened to
match. One ramp of that day proves the controller:

* raises the Deployment before the load arrives: each replica count on the
  way up is reached before the true rate needs it;
* lowers it only after the stabilisation window;
* places nothing itself: kube-scheduler places the new replicas through our
  extender, spread over the pool's GPU nodes;
* in DryRun changes only status.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from scheduler_extender.devcluster import prometheus as prom
from scheduler_extender.devcluster.cluster import LocalCluster
from scheduler_extender.devcluster.controller import start_controller
from scheduler_extender.devcluster.processes import ManagedProcess
from tests.e2e.helpers import NodePool, bound, extender_decisions, list_pods, verb_total, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CRD = Path(__file__).parents[2] / "deploy" / "crds" / "agentautoscalers.scheduler-extender.io.yaml"
AGENT = "agent-0"
PERIOD = 300.0  # seconds in a "day"
MEAN, AMPLITUDE = 100.0, 0.6  # requests/s: 40 at night, 160 at the peak
TARGET = 20.0  # requests/s per replica: 2 replicas at night, 8 at the peak
LEAD = 30  # seconds
WINDOW = 60  # scale-down stabilisation, seconds
WARM_UP = 50.0  # seconds from the test's start to the trough
HISTORY = 3 * PERIOD  # backfilled: Holt-Winters needs two seasons
STEP = 2.0  # the forecaster's sample step
QUERY = f"sum by (agent) (rate({prom.METRIC}_total[10s]))"


@dataclass(frozen=True)
class ShiftedTraffic(prom.AgentTraffic):
    """``AgentTraffic`` with its day starting at ``offset``: the test chooses when the ramp comes."""

    offset: float = 0.0

    def rate(self, agent: str, at: float) -> float:
        return super().rate(agent, at - self.offset)

    def count(self, agent: str, at: float) -> float:
        return super().count(agent, at - self.offset)


@dataclass
class Timeline:
    """What the test saw every second: the Deployment's replicas and the true rate."""

    traffic: ShiftedTraffic
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time, spec.replicas)

    def first_at_least(self, replicas: int, after: float) -> float | None:
        return next((t for t, r in self.samples if t >= after and r >= replicas), None)

    def needed(self, at: float) -> int:
        return math.ceil(self.traffic.rate(AGENT, at) / TARGET)

    def first_needing(self, replicas: int, after: float, until: float) -> float | None:
        t = after
        while t <= until:
            if self.needed(t) >= replicas:
                return t
            t += 0.25
        return None


def deployment(name: str, agent: str, namespace: str, node_pool: NodePool) -> dict[str, Any]:
    template = node_pool.pod(name, namespace=namespace, gpus=1, agent=agent)
    labels = {"app": name, **template["metadata"].get("labels", {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": template["spec"]},
        },
    }


def autoscaler(name: str, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "scheduler-extender.io/v1alpha1",
        "kind": "AgentAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "agent": AGENT,
            "minReplicas": 2,
            "maxReplicas": 12,
            "targetRequestsPerReplica": TARGET,
            "leadTime": f"{LEAD}s",
            "quantile": 0.9,
            "mode": mode,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": WINDOW}},
        },
    }


def custom(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    raw: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "scheduler-extender.io", "v1alpha1", namespace, "agentautoscalers", name,
        _preload_content=False,
    )  # fmt: skip
    body: dict[str, Any] = json.loads(raw.data)
    return body


def autoscaler_events(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    raw: Any = client.CoreV1Api(api).list_namespaced_event(
        namespace,
        field_selector=f"involvedObject.kind=AgentAutoscaler,involvedObject.name={name}",
        _preload_content=False,
    )
    events: list[dict[str, Any]] = json.loads(raw.data)["items"]
    return events


def replicas_of(apps: client.AppsV1Api, namespace: str, name: str) -> int:
    raw: Any = apps.read_namespaced_deployment_scale(name, namespace, _preload_content=False)
    return int(json.loads(raw.data)["spec"].get("replicas") or 0)


def test_controller_scales_ahead_of_the_ramp_and_back_after_the_window(
    cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
    tmp_path: Path,
) -> None:
    apps = client.AppsV1Api(api)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/agentautoscalers.scheduler-extender.io",
    )  # fmt: skip
    node_pool.add(4, gpus=4)
    for name, agent in (("expert", AGENT), ("shadow", "agent-shadow")):
        apps.create_namespaced_deployment(namespace, deployment(name, agent, namespace, node_pool))
    wait_for(
        "the first replicas to be placed",
        lambda: len(bound(list_pods(api, namespace))) == 4,
        timeout=60,
    )
    binds_before = verb_total(extender_decisions(cluster.extender_endpoint.metrics_url), "bind")

    started = time.time()
    trough = started + WARM_UP
    peak = trough + PERIOD / 2
    # sin() is lowest three quarters into its period: put that moment at ``trough``.
    traffic = ShiftedTraffic({AGENT: MEAN}, AMPLITUDE, PERIOD, offset=trough - 0.75 * PERIOD)
    exporter = prom.TrafficExporter(traffic)
    exporter.start()
    history = tmp_path / "history.om"
    prom.write_history(
        history, traffic, start=started - HISTORY - 60, end=started - 1, interval=1.0,
        instance=exporter.address,
    )  # fmt: skip
    server = prom.PrometheusServer(
        tmp_path / "prometheus", {prom.JOB: exporter.address}, scrape_interval=1.0, history=history
    )
    controller: ManagedProcess | None = None
    try:
        server.start()
        server.wait_scraped(timeout=60)
        controller = start_controller(
            cluster.kubeconfig, server.url, tmp_path / "controller.log", namespace=namespace,
            lease=(namespace, "agent-autoscaler", "e2e-controller"),
            env={
                "SCHEDULER_EXTENDER_PROMETHEUS__QUERY": QUERY,
                "SCHEDULER_EXTENDER_PROMETHEUS__STEP": f"{STEP:g}s",
                "SCHEDULER_EXTENDER_PROMETHEUS__SEASON": f"{PERIOD:g}s",
                "SCHEDULER_EXTENDER_PROMETHEUS__HISTORY": f"{HISTORY:g}s",
                # The forecast service fits at least this far for every consumer: the
                # lead time, a refresh and two steps, in this test's short "day".
                "SCHEDULER_EXTENDER_PROMETHEUS__HORIZON": f"{LEAD + 4 + 2 * STEP:g}s",
                "SCHEDULER_EXTENDER_CONTROLLER__FORECAST_REFRESH": "4s",
            },
        )  # fmt: skip
        metrics_port = controller.port
        for name, mode in (("expert", "Auto"), ("shadow", "DryRun")):
            manifest = autoscaler(name, mode)
            manifest["metadata"]["namespace"] = namespace
            cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

        # Follow one ramp: trough -> peak -> down again after the window.
        timeline = Timeline(traffic)
        shadow_desired: set[int] = set()
        deadline = peak + PERIOD / 4 + WINDOW + 60
        while time.time() < deadline:
            controller.check_running()
            timeline.samples.append((time.time(), replicas_of(apps, namespace, "expert")))
            shadow_desired.add(custom(api, namespace, "shadow").get("status", {}).get(
                "desiredReplicas", 0))  # fmt: skip
            ups = [t for (t, r), (_, before) in zip(timeline.samples[1:], timeline.samples,
                                                    strict=False) if r > before]  # fmt: skip
            downs = [t for (t, r), (_, before) in zip(timeline.samples[1:], timeline.samples,
                                                      strict=False) if r < before and t > peak]  # fmt: skip
            if ups and downs and downs[0] > ups[-1]:
                break
            time.sleep(1.0)

        top = max(r for _, r in timeline.samples)
        assert top >= timeline.needed(peak), timeline.samples

        # Ahead of the load: on the way up, each count is there before the true rate needs it.
        ahead = []
        for level in range(timeline.needed(trough) + 1, timeline.needed(peak) + 1):
            needed_at = timeline.first_needing(level, trough, peak)
            reached_at = timeline.first_at_least(level, trough - PERIOD / 4)
            assert needed_at is not None
            assert reached_at is not None, (level, timeline.samples)
            ahead.append(needed_at - reached_at)
        assert statistics.median(ahead) > 0, ahead
        assert ahead[-1] > 0, ahead  # the peak's count was ready before the peak's load
        reasons = {e["reason"] for e in autoscaler_events(api, namespace, "expert")}
        assert "Forecast" in reasons, reasons

        # Down only after the window: every recommendation since the last scale-up
        # must age out first, and the true rate must have fallen.
        changes = list(zip(timeline.samples, timeline.samples[1:], strict=False))
        last_up = max(t for (_, a), (t, b) in changes if b > a and t <= peak + PERIOD / 4)
        first_down = min((t for (_, a), (t, b) in changes if b < a and t > last_up), default=None)
        assert first_down is not None, f"never scaled down: {timeline.samples}"
        assert first_down - last_up >= WINDOW - 2, (last_up, first_down)
        fell = next(t for t in _every(peak, deadline) if timeline.needed(t) < top)
        assert first_down >= fell + WINDOW - 5, (fell, first_down)
        assert "Stabilised" in {e["reason"] for e in autoscaler_events(api, namespace, "expert")}

        # The new replicas went through kube-scheduler and our extender, spread over the pool.
        pods = [p for p in list_pods(api, namespace) if p["metadata"]["name"].startswith("expert-")]
        placed = bound(pods)
        assert placed, pods
        per_node = dict.fromkeys(node_pool.node_names, 0)
        for pod in placed:
            per_node[pod["spec"]["nodeName"]] += 1
        assert max(per_node.values()) - min(per_node.values()) <= 1, per_node
        binds = verb_total(extender_decisions(cluster.extender_endpoint.metrics_url), "bind")
        assert binds - binds_before >= top - 2, (binds_before, binds)

        # DryRun: status only.
        assert replicas_of(apps, namespace, "shadow") == 2
        assert max(shadow_desired) >= timeline.needed(peak) > 2, shadow_desired
        shadow = custom(api, namespace, "shadow")["status"]
        able = {c["type"]: c for c in shadow["conditions"]}["AbleToScale"]
        assert (able["status"], able["reason"]) == ("True", "DryRun")
        assert "lastScaleTime" not in shadow or shadow["lastScaleTime"] is None
        scaled = {"Forecast", "Reactive", "Stabilised", "Limited"}
        assert not scaled & {e["reason"] for e in autoscaler_events(api, namespace, "shadow")}

        # Status, the Lease and the metrics tell the same story.
        status = custom(api, namespace, "expert")["status"]
        conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
        assert conditions["ForecastAvailable"] == ("True", "ForecastReady"), conditions
        assert conditions["ConflictingAutoscaler"] == ("False", "NoConflict"), conditions
        assert status["forecast"]["quantile"] > 0
        lease: Any = client.CoordinationV1Api(api).read_namespaced_lease(
            "agent-autoscaler", namespace, _preload_content=False
        )
        assert json.loads(lease.data)["spec"]["holderIdentity"] == "e2e-controller"
        metrics = {
            (sample.name, sample.labels.get("autoscaler")): sample.value
            for family in text_string_to_metric_families(
                httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            )
            for sample in family.samples
        }
        desired = metrics[("scheduler_extender_autoscaler_desired_replicas", "expert")]
        assert desired == status["desiredReplicas"]
        assert metrics[("scheduler_extender_autoscaler_leader", None)] == 1
    finally:
        if controller is not None:
            controller.stop()
        server.stop()
        exporter.stop()
        # The Deployments go before the namespace fixture waits for the pods to go.
        for name in ("expert", "shadow"):
            cluster.kubectl("delete", "agentautoscaler", name, "-n", namespace, "--ignore-not-found",
                            "--wait=false", check=False)  # fmt: skip
            with contextlib.suppress(ApiException):
                apps.delete_namespaced_deployment(name, namespace, _preload_content=False)


def _every(start: float, end: float, step: float = 0.25) -> list[float]:
    return [start + i * step for i in range(int((end - start) / step) + 1)]
