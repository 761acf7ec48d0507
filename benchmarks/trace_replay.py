"""The Alibaba GPU trace (openb) as nodes, an arrival sequence and the figures of a replay.

Pure: reading the CSV files, building the variants, an offline reference packing
and the metrics of a replay from its final placement. ``bench_trace`` runs the
replay itself on the local control plane.

Trace: alibaba/clusterdata ``cluster-trace-gpu-v2023`` (the ``openb`` node and
pod lists) of Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing
Workloads with Fragmentation Gradient Descent", USENIX ATC'23. Read at run time
from ``../shared/data/openb/`` (never copied into the repository).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NODE_FILE = "openb_node_list_gpu_node.csv"
POD_FILE = "openb_pod_list_default.csv"
SEED = 16
OVERSUBSCRIPTION = 1.2  # pods are submitted until requests reach 120% of the GPUs


@dataclass(frozen=True, slots=True)
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


@dataclass(frozen=True, slots=True)
class TracePod:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int  # whole GPUs: a GPU-sharing pod (gpu_milli < 1000) counts one
    models: tuple[str, ...] = ()  # allowed GPU models; empty: any
    milli: int = 1000  # thousandths of its one GPU a GPU-sharing pod uses (gpu_milli)

    @property
    def shares(self) -> bool:
        return self.gpus == 1 and self.milli < 1000

    @property
    def gpu_units(self) -> float:
        """GPUs requested, a share counted as its fraction of one GPU."""
        return self.milli / 1000 if self.shares else float(self.gpus)

    def fits(self, node: TraceNode) -> bool:
        """Whether ``node``, empty, could hold the pod."""
        return (
            node.gpus >= self.gpus
            and node.cpu_milli >= self.cpu_milli
            and node.memory_mib >= self.memory_mib
            and (not self.models or node.model in self.models)
        )


def default_dir() -> Path:
    """``../shared/data/openb`` of the repository (or of the checkout it is a worktree of)."""
    root = Path(__file__).resolve().parent.parent
    for base in (root.parent, root.parent.parent):
        candidate = base / "shared" / "data" / "openb"
        if candidate.is_dir():
            return candidate
    return root.parent / "shared" / "data" / "openb"


def read_nodes(directory: Path) -> list[TraceNode]:
    with (directory / NODE_FILE).open(newline="") as f:
        return [
            TraceNode(r["sn"], int(r["cpu_milli"]), int(r["memory_mib"]), int(r["gpu"]), r["model"])
            for r in csv.DictReader(f)
        ]


def read_pods(directory: Path) -> list[TracePod]:
    """All pods in creation order (ties by name), deletions ignored."""
    with (directory / POD_FILE).open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (int(r["creation_time"]), r["name"]))
    return [
        TracePod(
            r["name"],
            int(r["cpu_milli"]),
            int(r["memory_mib"]),
            int(r["num_gpu"]),
            tuple(m for m in r["gpu_spec"].split("|") if m),
            int(r["gpu_milli"]) if r["num_gpu"] == "1" else 1000,
        )
        for r in rows
    ]


def repeated(pods: Sequence[TracePod]) -> Iterator[TracePod]:
    """The pods in order, then again (renamed ``<name>-r<k>``) for as long as asked.

    The paper fills its cluster by sampling the trace's tasks; the trace's GPU shares add up
    to 98% of its own fleet's GPUs, so the sharing setting repeats it to reach 120%."""
    for k in itertools.count():
        for pod in pods:
            yield pod if k == 0 else dataclasses.replace(pod, name=f"{pod.name}-r{k}")


def subset(nodes: Sequence[TraceNode], count: int | None) -> list[TraceNode]:
    """Every k-th node, ``count`` of them (the fleet's mix of models and sizes kept)."""
    if count is None or count >= len(nodes):
        return list(nodes)
    step = len(nodes) / count
    return [nodes[int(i * step)] for i in range(count)]


def arrivals(
    pods: Iterable[TracePod],
    nodes: Sequence[TraceNode],
    limit: float = OVERSUBSCRIPTION,
    *,
    shares: bool = False,
) -> list[TracePod]:
    """The pods that arrive until the GPUs requested exceed ``limit`` x the fleet's GPUs.

    ``shares``: a GPU-sharing pod counts its share of a GPU, not a whole one.
    Pods no node of the fleet could ever hold are left out (a subset of the
    fleet may lack the largest nodes).
    """
    capacity = sum(n.gpus for n in nodes)
    out: list[TracePod] = []
    requested = 0.0
    for pod in pods:
        if requested > limit * capacity:
            break
        if not any(pod.fits(n) for n in nodes):
            continue
        out.append(pod)
        requested += pod.gpu_units if shares else pod.gpus
    return out


def constrained(
    pods: Sequence[TracePod], nodes: Sequence[TraceNode], share: float = 1 / 3, seed: int = SEED
) -> list[TracePod]:
    """``share`` of the GPU pods (drawn with ``seed``) allowed one or two GPU models only,
    drawn from the models of the nodes that could hold them."""
    rng = random.Random(seed)
    gpu_pods = [i for i, p in enumerate(pods) if p.gpus > 0]
    chosen = set(rng.sample(gpu_pods, round(share * len(gpu_pods))))
    out = list(pods)
    for i in sorted(chosen):
        models = sorted({n.model for n in nodes if pods[i].fits(n)})
        k = min(len(models), rng.choice((1, 2)))
        out[i] = dataclasses.replace(pods[i], models=tuple(sorted(rng.sample(models, k))))
    return out


def multi_gpu_heavy(pods: Sequence[TracePod], copies: int = 3) -> list[TracePod]:
    """Every multi-GPU pod followed by ``copies`` more of it."""
    out: list[TracePod] = []
    for pod in pods:
        out.append(pod)
        if pod.gpus > 1:
            out.extend(dataclasses.replace(pod, name=f"{pod.name}-x{c}") for c in range(copies))
    return out


@dataclass(frozen=True, slots=True)
class Figures:
    """What one replay (or the offline reference) reached."""

    capacity: int
    at_100: float  # allocated / capacity once the requests reach 100% of it
    at_end: float  # allocated / capacity once all pods arrived (120%)
    first_fragmentation: float | None  # allocated / capacity at the first fragmentation failure
    multi_bound: int
    multi_total: int
    eight_bound: int
    eight_total: int
    fragmented_nodes: int  # nodes with some, not all, GPUs free at the end
    fragmented_free: int  # their free GPUs
    failures_by_model: Mapping[str, int]  # GPU pods left pending, by allowed models


def figures(
    nodes: Sequence[TraceNode], pods: Sequence[TracePod], placement: Mapping[str, str]
) -> Figures:
    """Figures of a replay: ``placement`` maps pod name -> node name for the pods bound.

    Walks the arrivals in order, as they were submitted, so the state before a
    pod is the pods bound before it. A *fragmentation failure* is a multi-GPU
    pod left pending although the free GPUs of the models it allows, summed
    over nodes, would hold it.
    """
    by_name = {n.name: n for n in nodes}
    capacity = sum(n.gpus for n in nodes)
    used = dict.fromkeys(by_name, 0)
    allocated = requested = 0
    at_100: float | None = None
    first: float | None = None
    multi = [0, 0]
    eight = [0, 0]
    failures: dict[str, int] = {}
    for pod in pods:
        node = placement.get(pod.name)
        if pod.gpus > 1:
            multi[1] += 1
            eight[1] += pod.gpus == 8
        if node is not None:
            used[node] += pod.gpus
            allocated += pod.gpus
            if pod.gpus > 1:
                multi[0] += 1
                eight[0] += pod.gpus == 8
        elif pod.gpus > 0:
            key = "|".join(pod.models) or "any"
            failures[key] = failures.get(key, 0) + 1
            if pod.gpus > 1 and first is None:
                free = sum(
                    n.gpus - used[n.name] for n in nodes if not pod.models or n.model in pod.models
                )
                if free >= pod.gpus:
                    first = allocated / capacity
        requested += pod.gpus
        if at_100 is None and requested >= capacity:
            at_100 = allocated / capacity
    partial = [n for n in nodes if 0 < n.gpus - used[n.name] < n.gpus]
    return Figures(
        capacity,
        at_100 if at_100 is not None else allocated / capacity,
        allocated / capacity,
        first,
        multi[0],
        multi[1],
        eight[0],
        eight[1],
        len(partial),
        sum(n.gpus - used[n.name] for n in partial),
        failures,
    )


@dataclass(frozen=True, slots=True)
class SharingFigures:
    """What one replay of the GPU-sharing setting reached, counted on devices.

    GPUs allocated count a share as the fraction of its device it consumes.
    """

    capacity: int
    at_100: float  # allocated / capacity once the requests reach 100% of it
    at_end: float  # allocated / capacity once all pods arrived
    first_multi_failure: float | None  # allocated / capacity when a multi-GPU pod first failed
    multi_bound: int
    multi_total: int
    eight_bound: int
    eight_total: int
    fragmented_gpus: int  # GPUs partly allocated at the end
    fragmented_free: float  # what is left of them, in GPUs
    overcommitted: int  # GPUs whose allocations consume more than the GPU (must be 0)

    @property
    def unallocated_100(self) -> float:
        """The share of the GPUs left unallocated once the requests reach 100% of them."""
        return 1.0 - self.at_100

    @property
    def unallocated_end(self) -> float:
        return 1.0 - self.at_end


Consumption = Sequence[tuple[str, int]]  # (node/device, thousandths of the device)


def sharing_figures(
    nodes: Sequence[TraceNode],
    pods: Sequence[TracePod],
    placement: Mapping[str, str],
    devices: Mapping[str, Consumption],
    units: int = 1000,
) -> SharingFigures:
    """Figures of a replay of the sharing setting.

    ``placement``: pod name -> node of the pods bound; ``devices``: pod name ->
    what its claims' allocations consume of which device (``units`` per device),
    read from the claims. Walks the arrivals in order; a *multi-GPU failure* is
    a multi-GPU pod left pending although the untouched GPUs of the models it
    allows, summed over nodes, would hold it.
    """
    capacity = sum(n.gpus for n in nodes)
    used: dict[str, int] = {f"{n.name}/gpu-{i}": 0 for n in nodes for i in range(n.gpus)}
    model_of = {f"{n.name}/gpu-{i}": n.model for n in nodes for i in range(n.gpus)}
    allocated = requested = 0.0
    at_100: float | None = None
    first: float | None = None
    multi = [0, 0]
    eight = [0, 0]
    for pod in pods:
        bound = pod.name in placement
        if pod.gpus > 1:
            multi[1] += 1
            eight[1] += pod.gpus == 8
            multi[0] += bound
            eight[0] += bound and pod.gpus == 8
        if bound:
            for device, amount in devices.get(pod.name, ()):
                used[device] += amount
                allocated += amount / units
        elif pod.gpus > 1 and first is None:
            untouched = sum(
                1
                for device, taken in used.items()
                if taken == 0 and (not pod.models or model_of[device] in pod.models)
            )
            if untouched >= pod.gpus:
                first = allocated / capacity
        requested += pod.gpu_units
        if at_100 is None and requested >= capacity:
            at_100 = allocated / capacity
    partial = [taken for taken in used.values() if 0 < taken < units]
    return SharingFigures(
        capacity,
        at_100 if at_100 is not None else allocated / capacity,
        allocated / capacity,
        first,
        multi[0],
        multi[1],
        eight[0],
        eight[1],
        len(partial),
        sum(units - taken for taken in partial) / units,
        sum(1 for taken in used.values() if taken > units),
    )


def best_fit_offline(nodes: Sequence[TraceNode], pods: Sequence[TracePod]) -> dict[str, str]:
    """An offline reference packing of the same arrivals.

    It sees every pod up to the point where the requests reach 100% of the
    GPUs at once and places them largest first (GPUs, then the fewest models
    allowed, then cpu, then memory), each on the feasible node with the fewest GPUs left after it, then on a
    node of the model the fewest pods could use, then with the least cpu left;
    the later pods follow in arrival order, placed the same way. It is a
    feasible packing, so a lower bound of the ideal one, not an upper bound
    (an exact optimum for 1213 nodes and 8000 pods is out of reach of the
    CP-SAT packer's time limits).
    """
    capacity = sum(n.gpus for n in nodes)
    names = [n.name for n in nodes]
    models = sorted({n.model for n in nodes})
    model_of = np.array([models.index(n.model) for n in nodes])
    free = np.array([[n.gpus, n.cpu_milli, n.memory_mib] for n in nodes], dtype=np.int64)
    wanted = np.zeros(len(models), dtype=np.int64)  # GPU pods that could use each model
    for pod in pods:
        if pod.gpus:
            for model in {n.model for n in nodes if pod.fits(n)}:
                wanted[models.index(model)] += 1
    cut = requested = 0
    for cut, pod in enumerate(pods, 1):  # noqa: B007
        requested += pod.gpus
        if requested >= capacity:
            break
    # Largest first; among equals, those allowed the fewest models first.
    first = sorted(
        pods[:cut],
        key=lambda p: (-p.gpus, len(p.models) or len(models), -p.cpu_milli, -p.memory_mib),
    )
    placement: dict[str, str] = {}
    for pod in [*first, *pods[cut:]]:
        need = np.array([pod.gpus, pod.cpu_milli, pod.memory_mib])
        ok = (free >= need).all(axis=1)
        if pod.models:
            ok &= np.isin(model_of, [models.index(m) for m in pod.models if m in models])
        candidates = np.flatnonzero(ok)
        if len(candidates) == 0:
            continue
        left = free[candidates] - need
        scarcity = wanted[model_of[candidates]] if pod.gpus else np.zeros(len(candidates))
        order = np.lexsort((left[:, 1], scarcity, left[:, 0]))  # last key sorts first
        chosen = int(candidates[order[0]])
        free[chosen] -= need
        placement[pod.name] = names[chosen]
    return placement


def best_fit_sharing_offline(
    nodes: Sequence[TraceNode], pods: Sequence[TracePod], units: int = 1000
) -> tuple[dict[str, str], dict[str, list[tuple[str, int]]]]:
    """An offline reference packing of the sharing setting (placement, devices taken).

    As ``best_fit_offline``, it sees every pod up to the 100% point at once and
    places them largest first (GPU units, then cpu, then memory); a share goes
    to the feasible device (cpu and memory on its node) with the least left
    after it, whole devices to the feasible node with the fewest untouched
    devices left after them; the later pods follow in arrival order. A
    feasible packing, so a reference, not a bound.
    """
    capacity = sum(n.gpus for n in nodes)
    free = {n.name: [units] * n.gpus for n in nodes}
    cpu = {n.name: n.cpu_milli for n in nodes}
    memory = {n.name: n.memory_mib for n in nodes}
    cut, requested = 0, 0.0
    for cut, pod in enumerate(pods, 1):  # noqa: B007
        requested += pod.gpu_units
        if requested >= capacity:
            break
    first = sorted(pods[:cut], key=lambda p: (-p.gpu_units, -p.cpu_milli, -p.memory_mib))
    placement: dict[str, str] = {}
    taken: dict[str, list[tuple[str, int]]] = {}
    for pod in [*first, *pods[cut:]]:
        best: tuple[tuple[int, int], str, list[int]] | None = None
        for n in nodes:
            if not pod.fits(n) or cpu[n.name] < pod.cpu_milli or memory[n.name] < pod.memory_mib:
                continue
            devices = free[n.name]
            if pod.gpus == 0:
                key, chosen = (0, cpu[n.name] - pod.cpu_milli), []
            elif pod.shares:
                fitting = [i for i, f in enumerate(devices) if f >= pod.milli]
                if not fitting:
                    continue
                i = min(fitting, key=lambda d: devices[d])
                key, chosen = (devices[i] - pod.milli, cpu[n.name] - pod.cpu_milli), [i]
            else:
                whole = [i for i, f in enumerate(devices) if f == units]
                if len(whole) < pod.gpus:
                    continue
                key = (len(whole) - pod.gpus, cpu[n.name] - pod.cpu_milli)
                chosen = whole[: pod.gpus]
            if best is None or key < best[0]:
                best = (key, n.name, chosen)
        if best is None:
            continue
        _, name, chosen = best
        amount = pod.milli if pod.shares else units
        for i in chosen:
            free[name][i] -= amount
        cpu[name] -= pod.cpu_milli
        memory[name] -= pod.memory_mib
        placement[pod.name] = name
        taken[pod.name] = [(f"{name}/gpu-{i}", amount) for i in chosen]
    return placement, taken


# The largest node the FGD paper's simulator normalises its Best-fit score by (cpu, GPU).
_MAX_CPU_MILLI, _MAX_GPU_MILLI = 128_000, 8_000


def best_fit_sharing_online(
    nodes: Sequence[TraceNode], pods: Sequence[TracePod], units: int = 1000
) -> tuple[dict[str, str], dict[str, list[tuple[str, int]]]]:
    """The FGD paper's Best-fit baseline in the sharing setting (placement, devices taken).

    Each pod in arrival order, as a scheduler sees it: the node where the
    free cpu and GPU capacity left after it, each over the largest node's
    (128 cores, 8 GPUs) and weighed half, is the least (the score of
    ``best_fit_score.go`` in the paper's simulator, hkust-adsl/
    kubernetes-scheduler-simulator; ties to the first node); a share on the
    node's tightest device that fits it, whole GPUs on its first untouched
    devices. The paper's "best baseline" is the best of such online policies.
    """
    names = [n.name for n in nodes]
    width = max((n.gpus for n in nodes), default=0)
    devices = np.full((len(nodes), width), -1, dtype=np.int64)  # thousandths free; -1: none
    for i, n in enumerate(nodes):
        devices[i, : n.gpus] = units
    cpu = np.array([n.cpu_milli for n in nodes], dtype=np.int64)
    memory = np.array([n.memory_mib for n in nodes], dtype=np.int64)
    model = np.array([n.model for n in nodes])
    placement: dict[str, str] = {}
    taken: dict[str, list[tuple[str, int]]] = {}
    for pod in pods:
        ok = (cpu >= pod.cpu_milli) & (memory >= pod.memory_mib)
        if pod.models:
            ok &= np.isin(model, pod.models)
        amount = pod.milli if pod.shares else units
        if pod.gpus:
            ok &= (devices >= amount).sum(axis=1) >= pod.gpus
        candidates = np.flatnonzero(ok)
        if len(candidates) == 0:
            continue
        gpu_left = np.where(devices[candidates] > 0, devices[candidates], 0).sum(axis=1)
        left = (cpu[candidates] - pod.cpu_milli) / _MAX_CPU_MILLI + (
            gpu_left - amount * pod.gpus
        ) / _MAX_GPU_MILLI
        row = int(candidates[np.argmin(left)])
        if pod.shares:
            free = devices[row]
            chosen = [int(np.argmin(np.where(free >= amount, free, units + 1)))]
        else:
            chosen = [int(i) for i in np.flatnonzero(devices[row] >= amount)[: pod.gpus]]
        devices[row, chosen] -= amount
        cpu[row] -= pod.cpu_milli
        memory[row] -= pod.memory_mib
        placement[pod.name] = names[row]
        taken[pod.name] = [(f"{names[row]}/gpu-{i}", amount) for i in chosen]
    return placement, taken


def upper_bound(nodes: Sequence[TraceNode], pods: Sequence[TracePod]) -> tuple[float, float]:
    """Upper bounds of the share of GPUs any placement allocates: (at 100%, at the end).

    The linear relaxation of placing the pods (those up to the point where the
    requests reach 100% of the GPUs, then all of them) on groups of identical
    nodes: per group, the pods' GPUs, cpu and memory within the group's, pods
    over half a node's GPUs at most one per node, each pod only on groups whose
    nodes, empty, could hold it. Every real placement is a solution, so its
    optimum bounds them all (solved with GLOP, OR-Tools' LP solver).
    """
    capacity = sum(n.gpus for n in nodes)
    cut = requested = 0
    for cut, pod in enumerate(pods, 1):  # noqa: B007
        requested += pod.gpus
        if requested >= capacity:
            break
    return _lp_bound(nodes, pods[:cut]) / capacity, _lp_bound(nodes, pods) / capacity


def _lp_bound(nodes: Sequence[TraceNode], pods: Sequence[TracePod]) -> float:
    from ortools.linear_solver import pywraplp

    groups: dict[tuple[int, int, int, str], int] = {}
    for n in nodes:
        key = (n.gpus, n.cpu_milli, n.memory_mib, n.model)
        groups[key] = groups.get(key, 0) + 1
    shapes: dict[TracePod, int] = {}
    for p in pods:
        if p.gpus:
            shape = dataclasses.replace(p, name="")
            shapes[shape] = shapes.get(shape, 0) + 1
    solver = pywraplp.Solver.CreateSolver("GLOP")
    x: dict[tuple[int, int], Any] = {}
    group_list = list(groups.items())
    shape_list = list(shapes.items())
    for s, (shape, _) in enumerate(shape_list):
        for g, ((gpus, cpu, memory, model), _) in enumerate(group_list):
            if shape.fits(TraceNode("", cpu, memory, gpus, model)):
                x[s, g] = solver.NumVar(0.0, solver.infinity(), f"x{s}_{g}")
    for s, (_, count) in enumerate(shape_list):
        solver.Add(sum(v for (si, _), v in x.items() if si == s) <= count)
    for g, ((gpus, cpu, memory, _), count) in enumerate(group_list):
        mine = [(shape_list[s][0], v) for (s, gi), v in x.items() if gi == g]
        if not mine:
            continue
        solver.Add(sum(p.gpus * v for p, v in mine) <= gpus * count)
        solver.Add(sum(p.cpu_milli * v for p, v in mine) <= cpu * count)
        solver.Add(sum(p.memory_mib * v for p, v in mine) <= memory * count)
        large = [v for p, v in mine if 2 * p.gpus > gpus]
        if large:
            solver.Add(sum(large) <= count)
    solver.Maximize(sum(shape_list[s][0].gpus * v for (s, _), v in x.items()))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        raise RuntimeError("the LP bound did not solve to optimality")
    return float(solver.Objective().Value())
