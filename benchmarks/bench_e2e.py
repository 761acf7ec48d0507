"""End-to-end scheduling throughput on the local control plane (``make bench-e2e``).

1000 fake GPU nodes, 2000 pending one-GPU pods of 40 agents. The pods are
created while no scheduler runs; then kube-scheduler starts and a watch times
every bind. Three runs on the same cluster, in this order, repeated ``--repeat``
times (3 rounds by default; the report takes the medians):

1. kube-scheduler alone (the extender is stopped too, so its watches cost nothing);
2. kube-scheduler calling the extender (filter, prioritize and bind);
3. kube-scheduler calling a no-op extender written in Go (``noop_extender/``):
   it passes every node, scores them all 0 and posts the Binding. That is the
   cost of the extender protocol itself on this machine, whatever the
   extender's language and policies: the floor under run 2.

Throughput is (pods - 1) / (last bind - first bind): the steady scheduling
rate, without the scheduler's start-up. All runs raise the scheduler's
client rate limit (qps 50 by default) so that none is capped by it: with
the limit, kube-scheduler alone would be held to its own binding calls'
rate while the extender's binds (made by the extender) are not limited.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import machine, write_section
from scheduler_extender.devcluster import nodes, schedconfig, workload
from scheduler_extender.devcluster.cluster import ClusterOptions, LocalCluster

SECTION = "End-to-end scheduling throughput (make bench-e2e)"
# The targets against the no-op extender measured in the same round: throughput, the
# extender's CPU per pod, and what it costs kube-apiserver per pod.
TARGET_RATIO = 0.9
TARGET_CPU = 1.3
TARGET_APISERVER = 1.15
CORES = sorted(os.sched_getaffinity(0))  # before --pin narrows this process's own
RATE_LIMITS = {"clientConnection": {"qps": 5000, "burst": 10000}}


@dataclass(frozen=True)
class Run:
    name: str
    pods: int
    first_bind: float
    last_bind: float
    scheduler_ready: float  # when kube-scheduler answered /readyz
    cpu: Mapping[str, float]  # component -> CPU seconds from scheduler start to last bind
    apiserver: Mapping[str, float]  # kube-apiserver's work in the same span (apiserver_work)
    phases: Mapping[str, float]  # kube-scheduler's mean seconds per phase (its own histograms)

    @property
    def pods_per_second(self) -> float:
        return (self.pods - 1) / max(self.last_bind - self.first_bind, 1e-9)

    @property
    def wall_seconds(self) -> float:
        return self.last_bind - self.scheduler_ready


@dataclass(frozen=True)
class Round:
    """The three runs, one after the other on the same cluster."""

    alone: Run
    extender: Run
    noop: Run
    latency: Mapping[str, tuple[float, int]]  # the extender's, see extender_latency

    @property
    def runs(self) -> list[Run]:
        return [self.alone, self.extender, self.noop]

    @property
    def vs_floor(self) -> float:
        """Our throughput over the no-op extender's: the issue's measure."""
        return self.extender.pods_per_second / self.noop.pods_per_second

    def cpu_vs_floor(self, component: str) -> float:
        """``component``'s CPU per pod in our run over the same in the no-op's."""
        ours = self.extender.cpu.get(component, 0.0) / self.extender.pods
        theirs = self.noop.cpu.get(component, 0.0) / self.noop.pods
        return ours / theirs if theirs else float("inf")


class BindClock:
    """Watches one namespace and notes when each pod first has a node.

    The API server closes watches whose reader falls behind, as this one may
    while 2000 pods are bound: the watch then resumes from the last version it
    saw, or relists when that version is gone.
    """

    RETRIES = 5

    def __init__(self, api: client.ApiClient, namespace: str, resource_version: str) -> None:
        self.bound: dict[str, float] = {}
        self.error: Exception | None = None
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._version = resource_version
        self._watch = watch.Watch()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _note(self, pod: Mapping[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if pod.get("spec", {}).get("nodeName") and name not in self.bound:
            self.bound[name] = time.monotonic()

    def _relist(self) -> None:
        listing: Any = self._core.list_namespaced_pod(self._namespace, _preload_content=False)
        body = json.loads(listing.data)
        for pod in body["items"]:
            self._note(pod)
        self._version = body["metadata"]["resourceVersion"]

    def _run(self) -> None:
        failures = 0
        while not self._stopped:
            try:
                stream: Any = self._watch.stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    resource_version=self._version,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                    timeout_seconds=600,
                )
                for event in stream:
                    pod = event["object"]
                    self._version = pod["metadata"].get("resourceVersion", self._version)
                    if event["type"] != "BOOKMARK":
                        self._note(pod)
                failures = 0
            except Exception as exc:
                # Also a 410 Gone, which the client reports as an exception.
                if self._stopped:
                    return
                failures += 1
                if failures > self.RETRIES:
                    self.error = exc
                    return
                try:
                    self._relist()
                except Exception as relist_error:
                    self.error = relist_error
                    return

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the bind watch of {self._namespace} failed") from self.error

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()


def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """component -> user + system CPU seconds it has used so far (Linux /proc).

    For the extender also its event loop's thread alone (``extender: event
    loop``): the rest is its watch threads and background loops.
    """
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            out[name] = _cpu_of(Path(f"/proc/{pid}/stat"))
            if name == "extender" and _is_python(pid):
                out["extender: event loop"] = _cpu_of(Path(f"/proc/{pid}/task/{pid}/stat"))
        except OSError:
            continue
    return out


def _is_python(pid: int) -> bool:
    return Path(f"/proc/{pid}/comm").read_text().startswith("python")


def _cpu_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SCHEDULER_PHASES = (
    "scheduler_scheduling_attempt_duration_seconds",
    "scheduler_scheduling_algorithm_duration_seconds",
    "scheduler_framework_extension_point_duration_seconds",
)


def scheduler_phases(port: int) -> dict[str, float]:
    """Mean seconds per call of kube-scheduler's phases, from its own histograms."""
    text = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=False, timeout=10).text
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in SCHEDULER_PHASES:
            continue
        for sample in family.samples:
            key = family.name.removeprefix("scheduler_").removesuffix("_duration_seconds")
            point = sample.labels.get("extension_point")
            if point:
                key = point
            if sample.name.endswith("_sum"):
                sums[key] = sums.get(key, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                counts[key] = counts.get(key, 0.0) + sample.value
    return {k: sums[k] / counts[k] for k in sums if counts.get(k)}


def apiserver_work(api: client.ApiClient) -> dict[str, float]:
    """What kube-apiserver has done so far, from its own counters: requests by
    verb and resource, and watch events sent by kind (with their bytes)."""
    response: Any = api.call_api("GET", f"{api.configuration.host}/metrics")
    response.read()
    work: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(response.data.decode()):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "apiserver_request_total":
                resource = "/".join(
                    filter(None, (labels.get("resource"), labels.get("subresource")))
                )
                work[f"request {labels.get('verb')} {resource}"] += sample.value
            elif sample.name == "apiserver_watch_events_total":
                work[f"watch event {labels.get('kind') or labels.get('resource')}"] += sample.value
            elif sample.name == "apiserver_watch_events_sizes_sum":
                work[f"watch bytes {labels.get('kind') or labels.get('resource')}"] += sample.value
    return work


def extender_latency(metrics_url: str) -> dict[str, tuple[float, int]]:
    """verb -> (seconds spent, calls) from the extender's request histogram; and
    "filter's wait (settled by X)" -> the same, of its filters' waits for the
    previous pod's bind (service/inflight.py)."""
    out: dict[str, tuple[float, int]] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text):
        if family.name == "scheduler_extender_request_duration_seconds":
            label = "verb"
        elif family.name == "scheduler_extender_in_flight_wait_seconds":
            label = "settled"
        else:
            continue
        for sample in family.samples:
            verb = sample.labels.get(label, "")
            if label == "settled":
                verb = f"filter's wait (settled by {verb})"
            total, count = out.get(verb, (0.0, 0))
            if sample.name.endswith("_sum"):
                out[verb] = (total + sample.value, count)
            elif sample.name.endswith("_count"):
                out[verb] = (total, count + int(sample.value))
    return out


NOOP_SOURCE = Path(__file__).with_name("noop_extender")


def build_noop_extender(directory: Path) -> Path:
    """Builds the no-op Go extender (standard library only) into ``directory``."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("bench-e2e: the no-op baseline extender needs a Go toolchain on PATH")
    binary = directory / "noop-extender"
    print("building the no-op extender (Go) ...", flush=True)
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=NOOP_SOURCE,
        env={
            **os.environ,
            "GOFLAGS": "-buildvcs=false",
            "CGO_ENABLED": "0",
            "GOTOOLCHAIN": "local",
        },
        check=True,
    )
    return binary


def start_noop_extender(cluster: LocalCluster, binary: Path) -> None:
    pki = cluster.pki
    prefix = schedconfig.extender_path(cluster.base_scheduler_config).rstrip("/") + "/"
    cluster.start_extender(
        command=[
            str(binary),
            f"-listen=127.0.0.1:{cluster.extender_endpoint.port}",
            f"-prefix={prefix}",
            f"-server={cluster.server}",
            f"-ca={pki.ca_cert}",
            f"-cert={pki.admin_cert}",
            f"-key={pki.admin_key}",
        ]
    )


def pin_to_cores(pids: Mapping[str, int]) -> None:
    """The extender on the last core, everything else (the control plane, kwok and
    this benchmark's bind watch) on the others, every thread (``taskset -a``)."""
    cores = CORES
    if len(cores) < 2:
        raise SystemExit("--pin needs at least 2 cores")
    rest = ",".join(map(str, cores[:-1]))
    for name, pid in pids.items():
        mask = str(cores[-1]) if name == "extender" else rest
        subprocess.run(["taskset", "-a", "-cp", mask, str(pid)], check=True, capture_output=True)
    subprocess.run(
        ["taskset", "-a", "-cp", rest, str(os.getpid())], check=True, capture_output=True
    )


def start_profile(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy (the bench dependency group) sampling the extender until SIGINT,
    as collapsed stacks. ``--gil``: only samples of the thread holding the GIL,
    as one waiting for a CPU on these 2 busy cores would otherwise count as
    busy wherever it was preempted (mostly in its socket writes, which wake
    kube-scheduler); ``--nonblocking`` so the sampling does not pause it."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: uv sync --group bench")
    command = [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(output)]
    command += ["--rate", "250", "--nonblocking", "--gil"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def pending_pods(namespace: str, count: int, scheduler_name: str) -> list[dict[str, Any]]:
    agents = workload.skewed_agents(40, total_replicas=count)
    return [
        workload.gpu_pod(
            f"{agent.name}-{i:04d}",
            namespace=namespace,
            scheduler_name=scheduler_name,
            agent=agent.name,
            memory="2Gi",
        )
        for agent in agents
        for i in range(agent.replicas)
    ]


def measure(
    cluster: LocalCluster,
    key: str,
    name: str,
    *,
    extender: Callable[[], object] | None,
    pods: int,
    profile: Path | None = None,
    pin: bool = False,
) -> Run:
    """One run in namespace bench-``key``; ``extender`` (re)starts the extender
    kube-scheduler calls (None: kube-scheduler alone)."""
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    namespace = f"bench-{key}"
    cluster.stop_scheduler()
    if extender is not None:
        extender()
    else:
        cluster.stop_extender()
    workload.ensure_namespace(api, namespace)
    print(f"[{name}] creating {pods} pending pods ...", flush=True)
    workload.create_pods(api, pending_pods(namespace, pods, cluster.scheduler_name))
    listing: Any = core.list_namespaced_pod(namespace, limit=1, _preload_content=False)
    clock = BindClock(api, namespace, json.loads(listing.data)["metadata"]["resourceVersion"])
    print(f"[{name}] starting kube-scheduler ...", flush=True)
    cluster.start_scheduler(extender=extender is not None, overrides=RATE_LIMITS)
    ready = time.monotonic()
    pids = cluster.pids()
    if pin:
        pin_to_cores(pids)
    cpu_before = cpu_seconds(pids)
    work_before = apiserver_work(api)
    spy = start_profile(pids["extender"], profile) if profile is not None else None
    deadline = ready + 900
    while len(clock.bound) < pods:
        if time.monotonic() > deadline:
            raise TimeoutError(f"[{name}] only {len(clock.bound)}/{pods} pods bound in 900 s")
        cluster.check_alive()
        clock.check()
        time.sleep(0.5)
    cpu_after = cpu_seconds(pids)
    work = {k: v - work_before.get(k, 0.0) for k, v in apiserver_work(api).items()}
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    port = cluster.health_port("kube-scheduler")
    phases = scheduler_phases(port) if port is not None else {}
    clock.stop()
    times = sorted(clock.bound.values())
    cpu = {c: cpu_after[c] - cpu_before[c] for c in cpu_after if c in cpu_before}
    run = Run(name, pods, times[0], times[-1], ready, cpu, work, phases)
    busy = ", ".join(f"{c} {s:.1f}" for c, s in sorted(cpu.items(), key=lambda kv: -kv[1]))
    print(
        f"[{name}] {run.pods_per_second:.1f} pods/s ({run.wall_seconds:.1f} s); CPU s: {busy}; "
        f"scheduling algorithm {1000 * phases.get('scheduling_algorithm', 0.0):.2f} ms per pod",
        flush=True,
    )
    cluster.stop_scheduler()
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0, _preload_content=False)
    core.delete_namespace(namespace, _preload_content=False)
    while True:  # the next run starts from empty nodes
        left: Any = core.list_namespaced_pod(namespace, limit=1, _preload_content=False)
        if not json.loads(left.data)["items"]:
            break
        time.sleep(0.5)
    return run


def report(rounds: list[Round], args: argparse.Namespace, startup: float) -> str:
    middle = sorted(rounds, key=lambda r: r.vs_floor)[len(rounds) // 2]
    runs = middle.runs
    rows = "\n".join(
        f"| {r.name} | {r.pods} | {r.pods_per_second:.1f} | {r.wall_seconds:.1f} s "
        f"| {1000 * r.phases.get('scheduling_algorithm', 0.0):.2f} ms |"
        for r in runs
    )
    summary = "\n".join(
        f"| {i} | {r.alone.pods_per_second:.1f} | {r.extender.pods_per_second:.1f} "
        f"| {r.noop.pods_per_second:.1f} | {r.vs_floor:.2f} | {r.cpu_vs_floor('extender'):.2f} "
        f"| {r.cpu_vs_floor('kube-apiserver'):.2f} |"
        for i, r in enumerate(rounds, 1)
    )
    throughput = statistics.median(r.vs_floor for r in rounds)
    cpu = statistics.median(r.cpu_vs_floor("extender") for r in rounds)
    apiserver = statistics.median(r.cpu_vs_floor("kube-apiserver") for r in rounds)
    components = sorted({c for r in runs for c in r.cpu}, key=lambda c: -runs[1].cpu.get(c, 0.0))
    cpu_rows = "\n".join(
        f"| {c} | " + " | ".join(f"{1000 * r.cpu.get(c, 0.0) / r.pods:.2f}" for r in runs) + " |"
        for c in components
    )
    work_keys = sorted(
        {k for r in runs for k, v in r.apiserver.items() if _notable(k, v / r.pods)},
        key=lambda k: -max(r.apiserver.get(k, 0.0) for r in runs),
    )
    work_rows = "\n".join(
        f"| {k} | " + " | ".join(_per_pod(k, r.apiserver.get(k, 0.0), r.pods) for r in runs) + " |"
        for k in work_keys
    )
    verbs = ", ".join(
        f"{verb} {1000 * total / count:.2f} ms ({count} calls)"
        for verb, (total, count) in sorted(middle.latency.items())
        if count
    )
    return f"""
Command: `make bench-e2e` ({args.nodes} kwok GPU nodes in the "mix" layout, {args.pods} pending
one-GPU pods of 40 agents with Zipf popularity, created before kube-scheduler starts). The local
control plane runs etcd, kube-apiserver, kube-controller-manager, kwok, kube-scheduler v1.36 and
the extender as processes on the same machine (ready in {startup:.1f} s). Throughput = (pods - 1) /
(last bind - first bind), timed by a watch. All runs raise kube-scheduler's client rate limit to
qps 5000 so none is capped by it; `percentageOfNodesToScore` is left adaptive (about 42% of
1000 nodes are scored and sent to the extender).

Machine: {machine()}; load average {os.getloadavg()[0]:.1f} when the run ended.

{len(rounds)} rounds, each the three runs one after the other on the same cluster; the targets
compare our run with the no-op extender's of the same round (medians over the rounds):

| round | alone pods/s | + extender pods/s | + no-op pods/s | ours / no-op | extender CPU per pod / no-op's | kube-apiserver CPU per pod / no-op run's |
|---|---|---|---|---|---|---|
{summary}

- throughput: **{throughput:.2f}** of the no-op's (target >= {TARGET_RATIO}: {_verdict(throughput >= TARGET_RATIO)});
- extender CPU per pod: **{cpu:.2f}x** the no-op's (target <= {TARGET_CPU}: {_verdict(cpu <= TARGET_CPU)});
- kube-apiserver CPU per pod: **{apiserver:.2f}x** its CPU in the no-op run (target <= {TARGET_APISERVER}: {_verdict(apiserver <= TARGET_APISERVER)}).

The median round in detail:

| run | pods | pods/s | kube-scheduler start to last bind | kube-scheduler's scheduling algorithm per pod |
|---|---|---|---|---|
{rows}

Mean time inside the extender per call during the extender run: {verbs}.

CPU per pod (ms), from kube-scheduler's start to the last bind:

| component | {" | ".join(r.name for r in runs)} |
|---|{"---|" * len(runs)}
{cpu_rows}

What kube-apiserver did per pod in the same span (its own `apiserver_request_total`,
`apiserver_watch_events_total` and `apiserver_watch_events_sizes`; the benchmark's own bind watch
is in every run):

| per pod | {" | ".join(r.name for r in runs)} |
|---|{"---|" * len(runs)}
{work_rows}

Where the time goes: kube-scheduler's scheduling cycle is sequential, and its scheduling
algorithm (the mean of its own `scheduler_scheduling_algorithm_duration_seconds`) includes the
filter and prioritize round trips to the extender; binds run in parallel with the next pods.
The difference between the runs' algorithm times is what an extender adds to every pod: the
time inside it, plus two HTTP exchanges and the wake-ups of two processes on 2 cores that etcd,
kube-apiserver, kwok and kube-scheduler keep busy. The no-op extender spends almost nothing
inside, so its row is the cost of the protocol alone on this machine: a target above its ratio
cannot be met here by any extender.
"""


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _notable(key: str, per_pod: float) -> bool:
    return per_pod >= (100.0 if key.startswith("watch bytes") else 0.05)


def _per_pod(key: str, value: float, pods: int) -> str:
    if key.startswith("watch bytes"):
        return f"{value / pods / 1024:.1f} KiB"
    return f"{value / pods:.2f}"


def one_round(cluster: LocalCluster, noop: Path, args: argparse.Namespace) -> Round:
    alone = measure(cluster, "alone", "kube-scheduler alone", extender=None, pods=args.pods,
        pin=args.pin,
    )  # fmt: skip
    # The extender run starts a fresh extender: its counters are that run's.
    with_extender = measure(
        cluster, "extender", "kube-scheduler + extender", extender=cluster.start_extender,
        pods=args.pods, profile=args.profile, pin=args.pin,
    )  # fmt: skip
    latency = extender_latency(cluster.extender_endpoint.metrics_url)
    floor = measure(
        cluster, "noop", "kube-scheduler + no-op extender (Go)",
        extender=lambda: start_noop_extender(cluster, noop), pods=args.pods, pin=args.pin,
    )  # fmt: skip
    return Round(alone, with_extender, floor, latency)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=2000)
    p.add_argument("--no-write", action="store_true", help="print, do not update BENCHMARKS.md")
    p.add_argument("--repeat", type=int, default=3, help="rounds (each: the three runs)")
    p.add_argument("--keep", type=Path, help="run the cluster in this directory and keep its logs")
    p.add_argument(
        "--profile", type=Path, metavar="FILE",
        help="record the extender's run with py-spy into FILE (collapsed stacks; needs the bench group)",
    )  # fmt: skip
    p.add_argument(
        "--pin", action="store_true",
        help="the extender (ours or the no-op) on a core of its own, all else on the others; "
        "prints, does not update BENCHMARKS.md",
    )  # fmt: skip
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with (
        tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp,
        tempfile.TemporaryDirectory(prefix="noop-extender-") as bin_dir,
    ):
        noop = build_noop_extender(Path(bin_dir))
        run_dir = args.keep or Path(tmp)
        options = ClusterOptions(run_dir=run_dir, extender=True, scheduler=False)
        with LocalCluster(options) as cluster:
            api = cluster.api_client()
            fleet = nodes.fleet(args.nodes, "mix", prefix="bench")
            print(f"creating {args.nodes} fake GPU nodes ...", flush=True)
            nodes.create_nodes(api, fleet)
            nodes.wait_schedulable(
                api, [n.name for n in fleet], timeout=300, alive=cluster.check_alive
            )
            rounds = []
            for i in range(args.repeat):
                print(f"round {i + 1} of {args.repeat}", flush=True)
                rounds.append(one_round(cluster, noop, args))
            startup = cluster.startup_seconds or 0.0
    body = report(rounds, args, startup)
    print(body)
    if not (args.no_write or args.pin):
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
