"""The openb trace replayed offline: kube-scheduler's default scores modelled, the extender's real.

``make bench-trace`` replays the trace through the real kube-scheduler, which
takes 10-20 minutes per run at full size on two cores. This replay takes
seconds to a minute, so weights and settings can be compared on a user's own
trace (or on every variant at full size) before a real run confirms them. It is a model, not
the benchmark of record: where the two were run on the same data they agree
within a point (BENCHMARKS.md).

What is modelled, per pod in arrival order, each tried once (nothing is ever
freed, so a pod kube-scheduler finds unschedulable stays so):

* the filter: NodeResourcesFit (GPUs, cpu, memory) and the pod's required
  node affinity on GPU labels, as NodeAffinity and the extender's filter do;
* the scores of the default profile that differ between these nodes:
  NodeResourcesFit LeastAllocated and NodeResourcesBalancedAllocation over
  cpu and memory (0-100 each, weight 1; the other plugins score every node
  alike here), plus, with the extender, its 0-10 score x 10 x the weight of
  ``deploy/scheduler-config.yaml``; the highest total wins, ties at random
  (kube-scheduler's ``selectHost``);
* what the extender's cache sees: ``bulk`` (every pod created before most are
  scheduled, as in the real replay, so pending pods are part of the demand)
  or ``online`` (each pod seen only when its turn comes).

In the *sharing* setting (GPUs through DRA claims, see ``bench_trace``) the
filter checks the pod's claim against the node's devices in place of the GPU
count, and the devices are allocated as kube-scheduler's DynamicResources
allocator does: the first devices of the node, in the order its slice lists
them, that fit the claim. The allocation is written into the claim the
extender's cache sees, as kube-scheduler writes it into the claim's status.

The extender side is the product's own code: ``ClusterState`` fed with the
same pods and nodes the real replay creates (parsed from the same manifests)
and ``Scorer`` with the default weights.

Run: make bench-trace-offline   (BENCH_TRACE_ARGS: --nodes N, --variants, --arrivals, --no-write)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.bench_trace import (
    SHARING,
    cells,
    node_manifests,
    pending_lines,
    pod_manifests,
    reference_rows,
    sharing_cells,
    sharing_manifests,
    sharing_references,
    sharing_slices,
    sharing_verdict,
    trace_arguments,
    variants,
)
from benchmarks.common import machine, write_section
from benchmarks.trace_replay import (
    Figures,
    SharingFigures,
    TraceNode,
    TracePod,
    best_fit_offline,
    figures,
    read_nodes,
    read_pods,
    sharing_figures,
    subset,
    upper_bound,
)
from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from scheduler_extender.devcluster import dra
from scheduler_extender.domain.cluster import ClusterState, Snapshot
from scheduler_extender.domain.columns import FloatArray, IntArray
from scheduler_extender.domain.demand import gpu_constraint
from scheduler_extender.domain.devices import AllocatedDevice
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import NEUTRAL
from scheduler_extender.domain.resources import CPU, MEMORY
from scheduler_extender.domain.scoring.policy import ScoringContext
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, MAX_SCORE, Scorer

SECTION = "GPU allocation on a production trace, replayed offline (make bench-trace-offline)"
GPU = "nvidia.com/gpu"
EXTENDER_WEIGHT = 5  # deploy/scheduler-config.yaml
MAX_NODE_SCORE = 100
ARRIVALS = ("bulk", "online")


@dataclass(frozen=True)
class Run:
    variant: str
    run: str
    figures: Figures | SharingFigures
    seconds: float


def kube_scores(snapshot: Snapshot, rows: IntArray, pod: Pod) -> FloatArray:
    """LeastAllocated + BalancedAllocation over cpu and memory, each 0-100, at ``rows``."""
    columns = snapshot.columns
    fractions = []
    for resource in (CPU, MEMORY):
        total = columns.allocatable_of(resource, rows)
        used = total - columns.free_of(resource, rows) + pod.requests.get(resource)
        fractions.append(
            np.clip(np.divide(used, total, out=np.ones(len(rows)), where=total > 0), 0.0, 1.0)
        )
    cpu, memory = fractions
    least_allocated = MAX_NODE_SCORE * (2.0 - cpu - memory) / 2.0
    # The standard deviation of two fractions is half their difference.
    balanced = MAX_NODE_SCORE * (1.0 - np.abs(cpu - memory) / 2.0)
    scores: FloatArray = least_allocated + balanced
    return scores


def feasible(snapshot: Snapshot, pod: Pod) -> IntArray:
    """Rows of the nodes that could take ``pod`` now (resources, GPU labels)."""
    columns = snapshot.columns
    everywhere = np.flatnonzero(columns.label_codes >= 0)
    fits = np.ones(len(everywhere), dtype=bool)
    for resource in (GPU, CPU, MEMORY):
        fits &= columns.free_of(resource, everywhere) >= pod.requests.get(resource)
    constraint = gpu_constraint(pod)
    if not constraint.unconstrained:
        admits = np.array([constraint.admits(labels) for labels in columns.label_sets])
        fits &= admits[columns.label_codes[everywhere]]
    rows: IntArray = everywhere[fits]
    return rows


def replay(
    fleet: Sequence[TraceNode],
    pods: Sequence[TracePod],
    *,
    extender: bool,
    arrivals: str,
    seed: int = 0,
) -> dict[str, str]:
    """Trace pod name -> node of every pod bound."""
    rng = np.random.default_rng(seed)
    state = ClusterState()
    for manifest in node_manifests(fleet):
        state.upsert_node(node_from_json(manifest))
    manifests = pod_manifests(pods, "trace", "gpu-scheduler")
    for i, manifest in enumerate(manifests):
        manifest["metadata"]["uid"] = f"trace-{i}"
    domain_pods = [pod_from_json(m, "agent") for m in manifests]
    if arrivals == "bulk":
        for pod in domain_pods:
            state.upsert_pod(pod)
    scorer = Scorer.from_weights(DEFAULT_WEIGHTS)
    placement: dict[str, str] = {}
    for trace_pod, pod in zip(pods, domain_pods, strict=True):
        if arrivals == "online":
            state.upsert_pod(pod)
        snapshot = state.snapshot()
        rows = feasible(snapshot, pod)
        if len(rows) == 0:
            continue
        chosen = pick(snapshot, rows, pod, scorer if extender else None, rng)
        placement[trace_pod.name] = chosen
        state.upsert_pod(dataclasses.replace(pod, node_name=chosen))
    return placement


def pick(
    snapshot: Snapshot,
    rows: IntArray,
    pod: Pod,
    scorer: Scorer | None,
    rng: np.random.Generator,
) -> str:
    """The node kube-scheduler picks among ``rows``: the highest total score, ties at random."""
    names = [str(n) for n in snapshot.columns.names_of(rows)]
    total = kube_scores(snapshot, rows, pod)
    if scorer is not None:
        table = scorer.score(pod, names, rows, ScoringContext(snapshot, NEUTRAL, GPU))
        weight = EXTENDER_WEIGHT * MAX_NODE_SCORE / MAX_SCORE
        total = total + weight * np.array(table.scores, dtype=float)
    best = np.flatnonzero(total >= total.max() - 1e-9)
    return names[int(rng.choice(best))]


def first_fit(free: list[int], trace_pod: TracePod) -> list[int] | None:
    """The devices (indexes) the DRA allocator gives the pod's claim on a node with ``free``
    thousandths per device: the first that fit, in slice order; None when it does not fit."""
    if trace_pod.shares:
        return next(([i] for i, f in enumerate(free) if f >= trace_pod.milli), None)
    whole = [i for i, f in enumerate(free) if f == dra.COMPUTE_UNITS][: trace_pod.gpus]
    return whole if len(whole) == trace_pod.gpus else None


def sharing_replay(
    fleet: Sequence[TraceNode],
    pods: Sequence[TracePod],
    *,
    extender: bool,
    arrivals: str,
    seed: int = 0,
) -> tuple[dict[str, str], dict[str, list[tuple[str, int]]]]:
    """(trace pod -> node, trace pod -> (node/device, thousandths)) of the sharing setting."""
    rng = np.random.default_rng(seed)
    state = ClusterState()
    for manifest in node_manifests(fleet):
        state.upsert_node(node_from_json(manifest))
    for device_class in dra.device_classes():
        state.upsert_device_class(device_class_from_json(device_class))
    for body in sharing_slices(fleet):
        state.upsert_slice(slice_from_json(body))
    free = {n.name: [dra.COMPUTE_UNITS] * n.gpus for n in fleet}
    submissions = sharing_manifests(pods, "trace", "gpu-scheduler")
    entries = []
    for i, (claim_manifest, manifest) in enumerate(submissions):
        manifest["metadata"]["uid"] = f"trace-{i}"
        claim = None
        if claim_manifest is not None:
            claim_manifest["metadata"]["uid"] = f"claim-{i}"
            claim = claim_from_json(claim_manifest)
        entries.append((pod_from_json(manifest, "agent"), claim))
    if arrivals == "bulk":
        for pod, claim in entries:
            state.upsert_pod(pod)
            if claim is not None:
                state.upsert_claim(claim)
    scorer = Scorer.from_weights(DEFAULT_WEIGHTS) if extender else None
    placement: dict[str, str] = {}
    taken: dict[str, list[tuple[str, int]]] = {}
    for trace_pod, (pod, claim) in zip(pods, entries, strict=True):
        if arrivals == "online":
            state.upsert_pod(pod)
            if claim is not None:
                state.upsert_claim(claim)
        snapshot = state.snapshot()
        rows = feasible(snapshot, pod)
        if trace_pod.gpus:
            names = snapshot.columns.names_of(rows)
            fits = [first_fit(free[str(n)], trace_pod) is not None for n in names]
            rows = rows[np.array(fits, dtype=bool)]
        if len(rows) == 0:
            continue
        chosen = pick(snapshot, rows, pod, scorer, rng)
        placement[trace_pod.name] = chosen
        if claim is not None:
            devices = first_fit(free[chosen], trace_pod) or []
            amount = trace_pod.milli if trace_pod.shares else dra.COMPUTE_UNITS
            results = []
            for d in devices:
                free[chosen][d] -= amount
                results.append(
                    AllocatedDevice(
                        "gpu", dra.DRIVER, chosen, f"gpu-{d}", consumed={dra.COMPUTE: amount}
                    )
                )
            state.upsert_claim(
                dataclasses.replace(claim, allocation=tuple(results), reserved_for=(pod.uid,))
            )
            taken[trace_pod.name] = [(f"{chosen}/gpu-{d}", amount) for d in devices]
        state.upsert_pod(dataclasses.replace(pod, node_name=chosen))
    return placement, taken


def row(r: Run) -> str:
    if isinstance(r.figures, SharingFigures):
        return f"| {r.variant} | {r.run} | {sharing_cells(r.figures)} |"
    return f"| {r.variant} | {r.run} | {cells(r.figures)} |"


def report(
    runs: Sequence[Run],
    references: Mapping[str, tuple[Figures, float, float]],
    sharing_baselines: Mapping[str, Mapping[str, SharingFigures]],
    fleet: Sequence[TraceNode],
    argv: Sequence[str],
    data: Path,
) -> str:
    whole = [r for r in runs if isinstance(r.figures, Figures)]
    sharing = [r for r in runs if isinstance(r.figures, SharingFigures)]
    tables = []
    if whole:
        rows = "\n".join([*(row(r) for r in whole), *reference_rows(references)])
        pending = pending_lines(
            (r.variant, r.run, r.figures) for r in whole if isinstance(r.figures, Figures)
        )
        tables.append(f"""| variant | run | GPUs allocated when requests reach 100% | at 120% (end) | allocated at the first fragmentation failure | multi-GPU pods bound | 8-GPU pods bound | fragmented nodes (free GPUs) |
|---|---|---|---|---|---|---|---|
{rows}

GPU pods left pending, by the models they allow (the four largest groups):

{pending}""")
    if sharing:
        rows = "\n".join(row(r) for r in sharing)
        verdicts: list[str] = []
        for variant, baselines in sharing_baselines.items():
            for name, reference in baselines.items():
                rows += f"\n| {variant} | {name} | {sharing_cells(reference)} |"
            by_run = {
                r.run: r.figures
                for r in sharing
                if r.variant == variant and isinstance(r.figures, SharingFigures)
            }
            alone = by_run.get("kube-scheduler alone")
            verdicts += [
                f"{run}: {sharing_verdict(alone, ours, baselines)}"
                for run, ours in by_run.items()
                if run.startswith("with the extender")
            ]
        tables.append(f"""The sharing setting (GPUs through DRA claims, shares of `compute`; see `make bench-trace`):

| variant | run | GPUs allocated when requests reach 100% | at 120% (end) | unallocated at 100% | unallocated at the end | allocated at the first multi-GPU failure | multi-GPU pods bound | 8-GPU pods bound | partly allocated GPUs (what is left of them) | GPUs over capacity |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}

{chr(10).join(f"- {v}" for v in verdicts)}""")
    capacity = sum(n.gpus for n in fleet)
    command = " ".join(["python -m benchmarks.trace_offline", *argv])
    body = "\n\n".join(tables)
    return f"""
Command: `make bench-trace-offline` (`{command}`). Data: the openb trace as in `make
bench-trace`, read from `{data}` at run time: {len(fleet)} nodes, {capacity} GPUs. A model of
kube-scheduler's default filter and scores with the extender's own cache and scoring
(`benchmarks/trace_offline.py` says what is modelled); *bulk*: every pod is seen pending before
its turn, as in the real replay; *online*: each pod is seen when its turn comes.

Machine: {machine()}.

{body}
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    trace_arguments(p)
    p.add_argument("--arrivals", nargs="+", default=list(ARRIVALS), choices=ARRIVALS)
    args = p.parse_args()
    if not args.data.is_dir():
        p.error(f"--data: no such directory: {args.data}")
    fleet = subset(read_nodes(args.data), args.nodes)
    chosen = variants(fleet, read_pods(args.data), args.variants)
    runs: list[Run] = []
    references = {}
    sharing_baselines: dict[str, dict[str, SharingFigures]] = {}
    for name, pods in chosen.items():
        if name == SHARING:
            sharing_baselines[name] = sharing_references(fleet, pods)
        else:
            references[name] = (
                figures(fleet, pods, best_fit_offline(fleet, pods)),
                *upper_bound(fleet, pods),
            )
        modes = [("kube-scheduler alone", False, "bulk")] + [
            (f"with the extender, {mode}", True, mode) for mode in args.arrivals
        ]
        for label, extender, mode in modes:
            print(f"[{name} / {label}] {len(pods)} pods ...", flush=True)
            started = time.monotonic()
            result: Figures | SharingFigures
            if name == SHARING:
                placed, taken = sharing_replay(fleet, pods, extender=extender, arrivals=mode)
                result = sharing_figures(fleet, pods, placed, taken)
            else:
                result = figures(fleet, pods, replay(fleet, pods, extender=extender, arrivals=mode))
            run = Run(name, label, result, time.monotonic() - started)
            print(f"{row(run)} ({run.seconds:.0f} s)", flush=True)
            runs.append(run)
    argv = [a for a in sys.argv[1:] if a != "--no-write"]
    body = report(runs, references, sharing_baselines, fleet, argv, args.data)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
