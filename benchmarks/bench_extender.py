"""Filter + prioritize latency through the real HTTP server.

A cache of 5000 GPU nodes and 20 000 pods (no API server: the cache is filled
directly, which is what the watch would do), uvicorn on loopback in its own
process, and one client process sending the scheduler's serial sequence:
filter, then prioritize with the survivors, for 100, 500 and 5000 candidate
node names.

With ``--claims`` the GPUs are DRA devices (a ResourceSlice per node, one
80Gi shareable device per GPU, a third of them holding shares) and each pod
asks for its GPU through a ResourceClaim the cache holds (a share of 10, 20
or 40Gi, or one or two whole devices): the filter checks the devices and
``device_packing`` scores them.

Run: make bench-extender   (or: uv run python -m benchmarks.bench_extender [--claims])
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
from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
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
from tests.dra_builders import claim_json, device_class_json, slice_json

NODES = 5000
PODS = 20_000
AGENTS = 200
CLAIMS = 2000  # pending claims the --claims pods ask through
SHARES = ("10Gi", "20Gi", "40Gi")


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


def build_cluster(rng: random.Random, claims: bool = False) -> SharedCluster:
    cluster = SharedCluster(assume_timeout=30.0)
    with cluster.locked():
        for i in range(NODES):
            gpus = rng.choice((1, 4, 8, 8))
            cluster.state.upsert_node(node(f"gpu-{i:05d}", 0 if claims else gpus))
            if claims:
                add_devices(cluster, f"gpu-{i:05d}", gpus, rng)
        if claims:
            cluster.state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
            for k in range(CLAIMS):
                whole = rng.random() < 0.3
                raw = claim_json(
                    f"bench-claim-{k}",
                    count=rng.choice((1, 2)) if whole else 1,
                    memory=None if whole else rng.choice(SHARES),
                )
                cluster.state.upsert_claim(claim_from_json(raw))
        for i in range(PODS):
            where = f"gpu-{rng.randrange(NODES):05d}"
            cluster.state.upsert_pod(
                pod(
                    f"p-{i}", rng.choice((0, 1)), node=where, agent=f"agent-{rng.randrange(AGENTS)}"
                )
            )
        cluster.publish_locked()
    return cluster


def add_devices(cluster: SharedCluster, name: str, gpus: int, rng: random.Random) -> None:
    """The node's slice, and a 40Gi share already allocated on a third of its devices."""
    cluster.state.upsert_slice(slice_from_json(slice_json(name, gpus, memory="80Gi")))
    for d in range(gpus):
        if rng.random() < 1 / 3:
            taken = claim_json(
                f"held-{name}-{d}", memory="40Gi", allocated=[(name, f"gpu-{d}")], consumed="40Gi"
            )
            cluster.state.upsert_claim(claim_from_json(taken))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int, claims: bool = False) -> None:
    """The server process: build the cache and serve until killed."""
    rng = random.Random(7)
    cluster = build_cluster(rng, claims)
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


def run(iterations: int, pods: str = "agents") -> str:
    port = free_port()
    print(f"starting the extender with {NODES} nodes and {PODS} pods ...", flush=True)
    argv = [sys.executable, "-m", "benchmarks.bench_extender", "--serve", str(port)]
    server = subprocess.Popen([*argv, "--claims"] if pods == "claims" else argv)
    rows = []
    cold = ""
    try:
        wait_until_up(port, server)
        client = Client(port)
        try:
            names = [f"gpu-{i:05d}" for i in range(NODES)]
            rng = random.Random(11)
            if pods == "claims":
                _, f, p, _ = measure(client, rng, names, NODES, 1, pods, warmup=0)
                cold = (
                    f"The first pod after start, {NODES} candidates: filter {ms(f[0])}, "
                    f"prioritize {ms(p[0])} (device_packing counts every node's devices)."
                )
            for size in (100, 500, 5000):
                rows.append(measure(client, rng, names, size, iterations, pods))
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
    # The targets are for agent replicas.
    targets = {100: "-", 500: "< 2 ms", 5000: "< 10 ms"} if pods == "agents" else {}
    for size, f, p, both in rows:
        lines.append(
            f"| {size} | {ms(percentile(f, 50))} | {ms(percentile(f, 99))} | {ms(percentile(p, 50))} "
            f"| {ms(percentile(p, 99))} | {ms(percentile(both, 50))} | {ms(percentile(both, 99))} "
            f"| {len(both) / sum(both):.0f} | {targets.get(size, '-')} |"
        )
    return "\n".join([*lines, "", cold] if cold else lines)


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
    pods: str = "agents",
    warmup: int | None = None,
) -> tuple[int, list[float], list[float], list[float]]:
    """``pods``: agent replicas; ``unlabelled`` pods (``demand_packing`` scores them); pods
    with ``claims`` (the devices are filtered and ``device_packing`` scores them).
    ``warmup``: cycles not recorded first (default a tenth of ``iterations``, at least 5)."""
    filter_times: list[float] = []
    prioritize_times: list[float] = []
    both: list[float] = []
    if warmup is None:
        warmup = max(iterations // 10, 5)
    for i in range(iterations + warmup):
        candidates = rng.sample(names, size)
        if pods == "unlabelled":
            the_pod: dict[str, Any] = pod_json(f"bench-{i}", rng.choice((1, 1, 2, 4)))
        elif pods == "claims":
            the_pod = pod_json(f"bench-{i}", 0)
            claim = f"bench-claim-{rng.randrange(CLAIMS)}"
            the_pod["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": claim}]
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
    pods = parser.add_mutually_exclusive_group()
    pods.add_argument(
        "--unlabelled",
        action="store_true",
        help="pods without the agent label (demand_packing); prints, does not edit BENCHMARKS.md",
    )
    pods.add_argument(
        "--claims",
        action="store_true",
        help="pods with DRA claims on shareable devices (the device filter, device_packing)",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.claims)
        return
    kind = "claims" if args.claims else "unlabelled" if args.unlabelled else "agents"
    table = run(args.iterations, kind)
    print(table)
    if args.unlabelled:
        return
    if args.claims:
        write_section(
            "Extender latency for pods with DRA claims (make bench-extender BENCH_EXTENDER_ARGS=--claims)",
            f"Command: `python -m benchmarks.bench_extender --claims` ({args.iterations} "
            "filter+prioritize cycles per size, as in the section above). Cache: "
            f"{NODES} nodes whose GPUs are DRA devices (one 80Gi shareable device per GPU, a "
            f"third holding a 40Gi share), {CLAIMS} pending claims (shares of "
            f"{', '.join(SHARES)}, or one or two whole devices); each pod asks through one of "
            f"them.\n\nMachine: {machine()}.\n\n{table}\n",
        )
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
