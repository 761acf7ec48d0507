"""The extender's CPU per scheduling cycle, in process (``make bench-cycle``).

``make bench-e2e`` measures throughput on a control plane that shares these 2
cores with the extender, so its figures move with whatever else the machine
runs. This benchmark takes the control plane away and measures what the
extender itself spends per pod: bench-e2e's cluster (1000 fake GPU nodes of
the "mix" layout, 2000 pending one-GPU pods of 40 agents with Zipf
popularity) in the extender's cache, and for every pod in turn the cycle
kube-scheduler drives: filter on 42% of the nodes (what its adaptive
``percentageOfNodesToScore`` sends), prioritize on those that passed, bind to
the best, then the two watch events that follow a bind (the pod bound, then
running). Through the verbs' handlers (request parsing and reply encoding
included), without HTTP. CPU is this process's time per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from benchmarks.common import machine, write_section
from scheduler_extender.adapters.kube.cache import freeze_long_lived_objects
from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.api.verbs import Reply, Verbs
from scheduler_extender.devcluster import nodes, workload
from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity, StaticPopularity
from scheduler_extender.domain.scoring import popularity as popularity_policy
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, Scorer
from scheduler_extender.domain.shared import SharedCluster
from scheduler_extender.service.extender import Extender
from scheduler_extender.service.inflight import InFlight

SECTION = "Extender CPU per scheduling cycle (make bench-cycle)"
SCHEDULER = "gpu-scheduler"
SENT = 0.42  # of the nodes, as kube-scheduler's adaptive percentageOfNodesToScore at 1000


class Binder:
    """Binds succeed at once: the watch's echo is played by the benchmark."""

    async def fetch_pod(self, namespace: str, name: str) -> Pod | None:
        return None

    async def bind(self, pod: Pod, node_name: str) -> None:
        return None


@dataclass
class Phases:
    seconds: dict[str, float] = field(default_factory=dict)

    async def timed(self, phase: str, call: Awaitable[Reply]) -> Any:
        start = time.process_time()
        reply = await call
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.process_time() - start
        return orjson.loads(reply.body)

    def watched(self, phase: str, apply: Callable[[], None]) -> None:
        start = time.process_time()
        apply()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.process_time() - start


def cluster_of(node_count: int, pods: list[dict[str, Any]]) -> SharedCluster:
    cluster = SharedCluster(assume_timeout=30.0)
    with cluster.locked():
        for fake in nodes.fleet(node_count, "mix", prefix="bench"):
            cluster.state.upsert_node(node_from_json(fake.manifest()))
        for raw in pods:
            cluster.state.upsert_pod(pod_from_json(raw, workload.AGENT_LABEL))
        cluster.publish_locked()
    freeze_long_lived_objects()  # as the service does after its initial list
    return cluster


def pending_pods(count: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    agents = workload.skewed_agents(40, total_replicas=count)
    pods = []
    for agent in agents:
        for i in range(agent.replicas):
            raw = workload.gpu_pod(
                f"{agent.name}-{i:04d}", namespace="bench", scheduler_name=SCHEDULER,
                agent=agent.name, memory="2Gi",
            )  # fmt: skip
            raw["metadata"]["uid"] = f"uid-{agent.name}-{i:04d}"
            pods.append(raw)
    random.Random(5).shuffle(pods)  # kube-scheduler's queue has nothing to do with load
    return pods, {a.name: a.rate for a in agents}


async def cycles(verbs: Verbs, cluster: SharedCluster, pods: list[dict[str, Any]]) -> Phases:
    phases = Phases()
    names = sorted(cluster.snapshot().nodes)
    rng = random.Random(11)
    sent = round(SENT * len(names))
    for raw in pods:
        candidates = rng.sample(names, sent)
        body = {"Pod": raw, "NodeNames": candidates}
        passed = (await phases.timed("filter", verbs.filter(orjson.dumps(body))))["NodeNames"]
        body = {"Pod": raw, "NodeNames": passed}
        scores = await phases.timed("prioritize", verbs.prioritize(orjson.dumps(body)))
        best = max(scores, key=lambda s: s["Score"])["Host"]
        meta = raw["metadata"]
        bind = {"PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"],
                "Node": best}  # fmt: skip
        await phases.timed("bind", verbs.bind(orjson.dumps(bind)))
        bound = {**raw, "spec": {**raw["spec"], "nodeName": best}}
        running = {**bound, "status": {"phase": "Running"}}
        for event in (bound, running):
            phases.watched("watch events", lambda e=event: apply(cluster, e))
    return phases


def apply(cluster: SharedCluster, raw: dict[str, Any]) -> None:
    pod = pod_from_json(raw, workload.AGENT_LABEL)
    with cluster.locked():
        cluster.state.upsert_pod(pod)
        cluster.publish_locked()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    pods, rates = pending_pods(args.pods)
    print(f"{args.nodes} nodes, {len(pods)} pending pods; one cycle per pod ...", flush=True)
    cluster = cluster_of(args.nodes, pods)
    extender = Extender(
        cluster=cluster,
        binder=Binder(),
        popularity=StaticPopularity(Popularity(MappingProxyType(rates))),
        scorer=Scorer.from_weights(DEFAULT_WEIGHTS),
        rules=FilterRules(),
        gpu_resource=workload.GPU_RESOURCE,
        scheduler_names=frozenset({SCHEDULER}),
        in_flight=InFlight(timeout=1.0),
    )
    verbs = Verbs(extender, Metrics(), workload.AGENT_LABEL)
    plans = 0
    make_plan = popularity_policy.plan

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal plans
        plans += 1
        return make_plan(*args, **kwargs)

    popularity_policy.plan = counted  # type: ignore[assignment]
    phases = asyncio.run(cycles(verbs, cluster, pods))
    total = sum(phases.seconds.values())
    rows = "\n".join(
        f"| {phase} | {1000 * s / len(pods):.3f} ms | {100 * s / total:.0f}% |"
        for phase, s in phases.seconds.items()
    )
    body = f"""
Command: `make bench-cycle` (`benchmarks/bench_cycle.py`; its docstring says what a cycle is).
{args.nodes} nodes, {len(pods)} cycles, {round(SENT * args.nodes)} candidate nodes per filter;
the popularity policy made {plans} pre-allocation plans.

Machine: {machine()}.

| phase | CPU per pod | share |
|---|---|---|
{rows}
| all | {1000 * total / len(pods):.3f} ms | 100% |
"""
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
