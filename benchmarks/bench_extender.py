"""Filter + prioritize latency through the real HTTP server.

A cache of 5000 GPU nodes and 20 000 pods (no API server: the cache is filled
directly, which is what the watch would do), uvicorn on loopback in its own
process, and one client process sending the scheduler's serial sequence:
filter, then prioritize with the survivors, for 100, 500 and 5000 candidate
node names.

Run: make bench-extender   (or: uv run python -m benchmarks.bench_extender)
"""

from __future__ import annotations

import argparse
import http.client
import random
import socket
import subprocess
import sys
import time
from types import MappingProxyType
from typing import Any

import orjson

from benchmarks.common import machine, percentile, write_section
from scheduler_extender.adapters.kube.cache import freeze_long_lived_objects
from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.api.app import AppConfig, create_app
from scheduler_extender.commands.serve import http_server, run_on_event_loop
from scheduler_extender.config import Settings
from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity, StaticPopularity
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, Scorer
from scheduler_extender.domain.shared import SharedCluster
from scheduler_extender.service.extender import Extender
from scheduler_extender.service.inflight import InFlight
from tests.builders import AGENT_LABEL, GPU, node, pod, pod_json

NODES = 5000
PODS = 20_000
AGENTS = 200


class NoBinder:
    """This benchmark never binds: its pods are not found, so each bind is refused.

    The client still sends the bind after prioritize, as kube-scheduler does:
    the bind (refused or not) is what lets the next pod's filter go on without
    waiting for it (service/inflight.py).
    """

    async def fetch_pod(self, namespace: str, name: str) -> Pod | None:
        return None

    async def bind(self, pod: Pod, node_name: str) -> None:
        raise NotImplementedError


def build_cluster(rng: random.Random) -> SharedCluster:
    cluster = SharedCluster(assume_timeout=30.0)
    with cluster.locked():
        for i in range(NODES):
            cluster.state.upsert_node(node(f"gpu-{i:05d}", rng.choice((1, 4, 8, 8))))
        for i in range(PODS):
            where = f"gpu-{rng.randrange(NODES):05d}"
            cluster.state.upsert_pod(
                pod(
                    f"p-{i}", rng.choice((0, 1)), node=where, agent=f"agent-{rng.randrange(AGENTS)}"
                )
            )
        cluster.publish_locked()
    return cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int) -> None:
    """The server process: build the cache and serve until killed."""
    rng = random.Random(7)
    cluster = build_cluster(rng)
    freeze_long_lived_objects()  # as the service does after its initial list
    popularity = Popularity(
        MappingProxyType({f"agent-{i}": 1000.0 / (i + 1) ** 1.1 for i in range(AGENTS)})
    )
    extender = Extender(
        cluster=cluster,
        binder=NoBinder(),
        popularity=StaticPopularity(popularity),
        scorer=Scorer.from_weights(DEFAULT_WEIGHTS),
        rules=FilterRules(),
        gpu_resource=GPU,
        scheduler_names=frozenset({"gpu-scheduler"}),
        in_flight=InFlight(timeout=Settings().in_flight_wait_seconds),
    )
    app = create_app(extender, Metrics(), AppConfig(agent_label=AGENT_LABEL))
    run_on_event_loop(http_server(app, "127.0.0.1", port).serve())


def run(iterations: int, unlabelled: bool = False) -> str:
    port = free_port()
    print(f"starting the extender with {NODES} nodes and {PODS} pods ...", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_extender", "--serve", str(port)]
    )
    rows = []
    try:
        wait_until_up(port, server)
        client = Client(port)
        try:
            names = [f"gpu-{i:05d}" for i in range(NODES)]
            rng = random.Random(11)
            for size in (100, 500, 5000):
                rows.append(measure(client, rng, names, size, iterations, unlabelled))
        finally:
            client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [
        "| candidate nodes | filter p50 | filter p99 | prioritize p50 | prioritize p99 | "
        "filter+prioritize p50 | filter+prioritize p99 | cycles/s | target p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    targets = {100: "-", 500: "< 2 ms", 5000: "< 10 ms"}
    for size, f, p, both in rows:
        lines.append(
            f"| {size} | {ms(percentile(f, 50))} | {ms(percentile(f, 99))} | {ms(percentile(p, 50))} "
            f"| {ms(percentile(p, 99))} | {ms(percentile(both, 50))} | {ms(percentile(both, 99))} "
            f"| {len(both) / sum(both):.0f} | {targets[size]} |"
        )
    return "\n".join(lines)


class Client:
    """A keep-alive HTTP/1.1 client with little overhead of its own, like kube-scheduler's."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: object) -> Any:
        self._conn.request("POST", path, orjson.dumps(body), {"Content-Type": "application/json"})
        response = self._conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}: {data[:200]!r}")
        return orjson.loads(data)

    def close(self) -> None:
        self._conn.close()


def wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the benchmark server exited with status {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the benchmark server did not start within 300 s")


def measure(
    client: Client,
    rng: random.Random,
    names: list[str],
    size: int,
    iterations: int,
    unlabelled: bool = False,
) -> tuple[int, list[float], list[float], list[float]]:
    """``unlabelled``: the pods carry no agent label (``demand_packing`` scores them)."""
    filter_times: list[float] = []
    prioritize_times: list[float] = []
    both: list[float] = []
    warmup = max(iterations // 10, 5)
    for i in range(iterations + warmup):
        candidates = rng.sample(names, size)
        if unlabelled:
            the_pod: dict[str, Any] = pod_json(f"bench-{i}", rng.choice((1, 1, 2, 4)))
        else:
            the_pod = pod_json(f"bench-{i}", 1, agent=f"agent-{rng.randrange(AGENTS)}")
        t0 = time.perf_counter()
        reply = client.post("/scheduler/filter", {"Pod": the_pod, "NodeNames": candidates})
        t1 = time.perf_counter()
        passed = reply["NodeNames"]
        scores = client.post("/scheduler/prioritize", {"Pod": the_pod, "NodeNames": passed})
        t2 = time.perf_counter()
        if passed:
            best = max(scores, key=lambda s: s["Score"])["Host"]
            meta = the_pod["metadata"]
            client.post("/scheduler/bind", {"PodName": meta["name"], "PodNamespace": meta["namespace"],
                                            "PodUID": meta["uid"], "Node": best})  # fmt: skip
        if i >= warmup:
            filter_times.append(t1 - t0)
            prioritize_times.append(t2 - t1)
            both.append(t2 - t0)
    print(f"  {size} candidates: p99 filter+prioritize {ms(percentile(both, 99))}", flush=True)
    return size, filter_times, prioritize_times, both


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--unlabelled",
        action="store_true",
        help="pods without the agent label (demand_packing); prints, does not edit BENCHMARKS.md",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    table = run(args.iterations, args.unlabelled)
    print(table)
    if args.unlabelled:
        return
    write_section(
        "Extender latency (make bench-extender)",
        f"Command: `make bench-extender` ({args.iterations} filter+prioritize cycles per size, one "
        f"client, keep-alive, uvicorn on 127.0.0.1). Cache: {NODES} GPU nodes, {PODS} pods, "
        f"{AGENTS} agents with Zipf popularity. Latency is measured by a minimal keep-alive `http.client` client, so it includes "
        f"JSON encoding, HTTP and decoding on both sides; the server runs in its own process.\n\n"
        f"Machine: {machine()}.\n\n{table}\n",
    )


if __name__ == "__main__":
    main()
