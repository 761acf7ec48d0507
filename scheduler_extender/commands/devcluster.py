"""``scheduler-extender dev-cluster`` and ``fake-nodes``: the local control plane.

``dev-cluster`` runs etcd, kube-apiserver, kube-controller-manager, kwok,
kube-scheduler and the extender on 127.0.0.1 until Ctrl-C (``make demo``,
``make dev-cluster``). ``fake-nodes`` adds kwok GPU nodes to any cluster.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from kubernetes import client

from scheduler_extender.commands.common import fail, kube_client
from scheduler_extender.devcluster import dra, nodes, workload
from scheduler_extender.devcluster.paths import RepositoryNotFoundError
from scheduler_extender.devcluster.processes import ComponentFailedError
from scheduler_extender.devcluster.tools import ToolsMissingError

if TYPE_CHECKING:
    from scheduler_extender.devcluster.cluster import LocalCluster

log = logging.getLogger(__name__)

DEMO_NAMESPACE = "agents"
DEFAULT_RUN_DIR = Path(".cluster/dev")
DEMO_MIN_GPUS = 48  # the demo's agents need ~40 GPUs at their peaks (the batch pool is extra)


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "dev-cluster",
        help="run a local control plane with fake GPU nodes and the extender (Ctrl-C stops it)",
        description="Start etcd, kube-apiserver, kube-controller-manager, kwok, kube-scheduler "
        "and the extender on 127.0.0.1 from the binaries 'make tools' built, create fake GPU "
        "nodes, and keep running until Ctrl-C. Logs and the kubeconfig are in --run-dir.",
    )
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                   help=f"logs, PKI, etcd data and the kubeconfig (default {DEFAULT_RUN_DIR})")  # fmt: skip
    p.add_argument("--nodes", type=int, default=16, help="fake GPU nodes to create (default 16)")
    p.add_argument("--gpus", default="mix",
                   help="GPUs per node: 1, 4, 8 or mix (default mix)")  # fmt: skip
    p.add_argument("--no-extender", dest="extender", action="store_false",
                   help="run kube-scheduler alone, without the extender")  # fmt: skip
    p.add_argument("--extender-port", type=int, help="port of the extender (default: a free one)")
    p.add_argument("--dra", action="store_true",
                   help="publish the fake nodes' GPUs as DRA devices (a ResourceSlice per node, "
                   "DeviceClasses; shareable memory) and have kube-scheduler call the extender "
                   "for every pod, as pods with claims need")  # fmt: skip
    p.add_argument("--demo-workload", action="store_true",
                   help=f"deploy skewed-popularity agents into namespace {DEMO_NAMESPACE!r} "
                   "(static popularity, no Prometheus)")  # fmt: skip
    p.add_argument("--demo", action="store_true",
                   help="the whole loop (make demo): live agent traffic, a real Prometheus, the "
                   "forecast, the AgentAutoscaler controller, a packer rescue and the dashboards")  # fmt: skip
    p.add_argument("--short", action="store_true",
                   help="with --demo: a shorter day (4 min) and rescue, as the e2e test runs it")  # fmt: skip
    p.add_argument("--headless", action="store_true",
                   help="with --demo: progress lines instead of the refreshing summary")  # fmt: skip
    p.add_argument("--report", type=Path, metavar="FILE",
                   help="with --demo: write what happened as JSON on exit")  # fmt: skip
    p.add_argument("--exit-after", type=float, metavar="SECONDS",
                   help="stop after this many seconds instead of waiting for Ctrl-C "
                   "(with --demo: counted from the traffic's start)")  # fmt: skip
    p.set_defaults(run=run_dev_cluster, settings_fields=[])

    f: argparse.ArgumentParser = subparsers.add_parser(
        "fake-nodes",
        help="create (or delete) kwok fake GPU nodes in a cluster",
        description="Create fake GPU nodes from deploy/kwok/gpu-node-{1,4,8}.yaml with zone, "
        "rack and NVLink-domain labels. The cluster must run kwok with deploy/kwok/stages.yaml.",
    )
    f.add_argument("--kubeconfig", type=Path, required=True, help="the cluster's kubeconfig")
    f.add_argument("--count", type=int, default=16, help="how many nodes (default 16)")
    f.add_argument("--gpus", default="mix", help="GPUs per node: 1, 4, 8 or mix (default mix)")
    f.add_argument("--prefix", default="gpu", help="node name prefix (default gpu)")
    f.add_argument("--start", type=int, default=0, help="index of the first node (default 0)")
    f.add_argument("--delete", action="store_true", help="delete those nodes instead")
    f.add_argument("--dra", action="store_true",
                   help="also publish their GPUs as DRA devices (ResourceSlices, DeviceClasses) "
                   "of the fake driver, or withdraw them with --delete")  # fmt: skip
    f.add_argument("--no-wait", dest="wait", action="store_false",
                   help="do not wait until the nodes are schedulable")  # fmt: skip
    f.set_defaults(run=run_fake_nodes, settings_fields=[])


def _fleet(count: int, gpus: str, *, prefix: str = "gpu", start: int = 0) -> list[nodes.FakeNode]:
    try:
        return nodes.fleet(count, gpus, prefix=prefix, start=start)
    except nodes.NodeLayoutError as exc:
        fail(f"--gpus/--count: {exc}")


def run_fake_nodes(args: argparse.Namespace) -> int:
    fleet = _fleet(args.count, args.gpus, prefix=args.prefix, start=args.start)
    api = kube_client(args.kubeconfig)
    names = [n.name for n in fleet]
    if args.delete:
        if args.dra:
            dra.withdraw(api, names)
        nodes.delete_nodes(api, names)
        print(f"deleted {len(names)} fake nodes")
        return 0
    existing = nodes.create_nodes(api, fleet)
    if args.dra:
        dra.publish(api, fleet)
    if args.wait:
        nodes.wait_schedulable(api, names)
    print(f"{len(names) - len(existing)} fake GPU nodes created, {len(existing)} already existed")
    return 0


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # Unwinds through the cluster's context manager, which stops every process.
    raise KeyboardInterrupt


def run_dev_cluster(args: argparse.Namespace) -> int:
    fleet = _fleet(args.nodes, args.gpus)
    if args.demo and args.demo_workload:
        fail("--demo and --demo-workload exclude each other (--demo deploys its own agents)")
    if not args.demo and (args.short or args.headless or args.report is not None):
        fail("--short, --headless and --report go with --demo")
    if not args.extender and args.demo:
        fail("--demo needs the extender (drop --no-extender)")
    if args.dra and args.demo:
        fail(
            "--dra does not go with --demo (the demo publishes the slices of its own shared-GPU nodes; its agents request nvidia.com/gpu)"
        )
    if args.exit_after is not None and args.exit_after <= 0:
        fail("--exit-after must be positive")
    if args.demo and sum(n.gpus for n in fleet) < DEMO_MIN_GPUS:
        fail(
            f"--demo needs at least {DEMO_MIN_GPUS} GPUs for its agents at their peaks; "
            f"--nodes {args.nodes} --gpus {args.gpus} has {sum(n.gpus for n in fleet)}"
        )
    if args.demo:
        from scheduler_extender.commands.demo import run_demo

        return run_demo(args, fleet)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # health polls are not news
    # Imported here: the control plane needs `cryptography`, a development
    # dependency that the production image (which only serves) does not ship.
    from scheduler_extender.devcluster.cluster import ClusterOptions, LocalCluster

    agents = workload.skewed_agents() if args.demo_workload else []
    options = ClusterOptions(
        run_dir=args.run_dir,
        extender=args.extender,
        extender_env=workload.popularity_env(agents) if agents else {},
        extender_port=args.extender_port,
        every_pod=args.dra,
    )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        cluster = LocalCluster(options)
    except (ToolsMissingError, RepositoryNotFoundError) as exc:
        fail(str(exc))
    print(f"starting the local control plane in {cluster.run_dir} ...", flush=True)
    with cluster:
        api = cluster.api_client()
        nodes.create_nodes(api, fleet)
        if args.dra:
            dra.publish(api, fleet)
        nodes.wait_schedulable(api, [n.name for n in fleet], alive=cluster.check_alive)
        if agents:
            workload.ensure_namespace(api, DEMO_NAMESPACE)
            workload.create_deployments(
                api,
                (
                    workload.agent_deployment(
                        a, namespace=DEMO_NAMESPACE, scheduler_name=cluster.scheduler_name
                    )
                    for a in agents
                ),
            )
        print(_summary(cluster, len(fleet), agents), flush=True)
        if agents:
            _print_placement(api, sum(a.replicas for a in agents))
        _wait(cluster, args.exit_after)
    print("local control plane stopped", flush=True)
    return 0


def _summary(cluster: LocalCluster, node_count: int, agents: list[workload.Agent]) -> str:
    kubectl = cluster.tools.kubectl
    kubeconfig = cluster.kubeconfig
    lines = [
        "",
        f"local control plane ready in {cluster.startup_seconds:.1f} s "
        f"(Kubernetes {cluster.tools.kubernetes_version}, {node_count} fake GPU nodes)",
        f"  kubeconfig   {kubeconfig}",
        f"  API server   {cluster.server}",
        f"  scheduler    kube-scheduler, profile {cluster.scheduler_name!r}",
    ]
    if cluster.options.extender:
        lines.append(
            f"  extender     {cluster.extender_url}  (metrics: {cluster.extender_endpoint.metrics_url})"
        )
    lines.append(f"  logs         {cluster.logs_dir}/")
    lines += [
        "",
        "Look at it:",
        f"  export KUBECONFIG={kubeconfig}",
        f"  {kubectl} get nodes -L nvidia.com/gpu.product,nvidia.com/gpu.count,topology.kubernetes.io/zone",
    ]
    if agents:
        lines.append(f"  {kubectl} get pods -n {DEMO_NAMESPACE} -o wide")
    if cluster.options.extender:
        lines.append(
            f"  curl -s {cluster.extender_endpoint.metrics_url} | grep scheduler_extender_decisions_total"
        )
    lines += [
        f"Pods opt in with spec.schedulerName: {cluster.scheduler_name} and request nvidia.com/gpu.",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)


def _print_placement(api: client.ApiClient, expected: int, timeout: float = 60.0) -> None:
    """Once the demo's pods are placed: how many replicas of each agent per node."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        response: Any = core.list_namespaced_pod(DEMO_NAMESPACE, _preload_content=False)
        pods = json.loads(response.data)["items"]
        placed = [p for p in pods if p["spec"].get("nodeName")]
        if len(placed) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_node: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for pod in placed:
        agent = pod["metadata"]["labels"].get(workload.AGENT_LABEL, "?")
        by_node[pod["spec"]["nodeName"]][agent] += 1
    print(f"{len(placed)}/{expected} agent replicas placed; replicas per node:")
    for node_name in sorted(by_node):
        agents = ", ".join(f"{a}x{n}" for a, n in sorted(by_node[node_name].items()))
        print(f"  {node_name:16} {agents}")
    sys.stdout.flush()


def _wait(cluster: LocalCluster, exit_after: float | None) -> None:
    deadline = None if exit_after is None else time.monotonic() + exit_after
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                cluster.check_alive()
            except ComponentFailedError as exc:
                fail(str(exc))
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
