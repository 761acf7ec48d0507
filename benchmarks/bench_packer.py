"""make bench-packer: the CP-SAT packing fallback against the greedy default, paper-style.

For each size (nodes x pods per node) the scenarios cycle over priority
levels K in {1, 2, 4} and utilisation u in {0.90, 0.95, 1.00, 1.05}, keeping
only seeds where the deterministic greedy baseline leaves pods pending (see
packer_scenarios). Each kept scenario is packed with each time limit, and
put in exactly one category (as in the paper's combine_results.py):

- better & optimal: more pods placed than the default (tiers compared highest
  first) and every tier proven optimal;
- better: more pods placed, not proven;
- default optimal: same counts as the default, every tier proven (the default
  is certified optimal);
- failure: neither.

Every plan is also run through the independent checker; any violation is
reported. The time limit includes building the problem and the model.

A separate run reports the time to the first plan that improves on the
default at 500 nodes x 5000 pods with GPUs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.common import machine, write_section
from benchmarks.packer_scenarios import POLICY, Scenario, Spec, kept_scenarios
from scheduler_extender.domain.packing.checker import check_plan
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.plan import Plan
from scheduler_extender.domain.packing.solver import SolveOptions, StageKind

SIZES = [(4, 4), (4, 8), (8, 4), (8, 8), (16, 4), (16, 8), (32, 4), (32, 8), (64, 4), (64, 8)]
PRIORITIES = (1, 2, 4)
UTILISATIONS = (0.90, 0.95, 1.00, 1.05)
CATEGORIES = ("better & optimal", "better", "default optimal", "failure")


NOTES = """Notes.

- The default is this repository's greedy baseline (kube-scheduler's queue order: priority, then
  name; NodeResourcesFit LeastAllocated on cpu and memory; ties by node name; no preemption), run
  offline, not kube-scheduler in KWOK as in the paper. Since it places pods highest priority first,
  what it leaves pending is mostly in the lowest tiers.
- Categories follow the paper's combine_results.py, but our objective is stricter per tier
  (fewest evictions, then most placed, then fewest moves; a pod is never evicted for one of the
  same priority), and an improvement is judged on placed pods per tier, highest first.
- The paper's repository reports, at 1 s, 0 % improved at 32 x 4 and 32 x 8 and 35 % at 16 x 8
  (its tables, aggregated over K and u; 100 seeds per combination). These runs use fewer seeds
  per combination (see each table), so shares move by a few points between runs.
- At 500 x 5000 the first improving plan comes from the single-move heuristic; the CP-SAT
  neighbourhood rounds that follow hold hundreds of thousands of variables and rarely improve
  further within the limit.
- The workers table cannot separate worker counts here: every count reaches 100 % at 32 x 8 and
  64 x 8 because the heuristic and the first solves find an improvement in every scenario.
"""


def category(plan: Plan) -> str:
    if plan.improves_on_default:
        return "better & optimal" if plan.optimal else "better"
    if plan.optimal and all(t.placed_after == t.placed_default for t in plan.tiers):
        return "default optimal"
    return "failure"


@dataclass
class Cell:
    outcomes: Counter[str] = field(default_factory=Counter)
    wall: list[float] = field(default_factory=list)
    violations: int = 0
    by_solver: int = 0  # CP-SAT improved on what the single-move heuristic had found

    def share(self, name: str) -> float:
        total = sum(self.outcomes.values())
        return 100.0 * self.outcomes[name] / total if total else float("nan")

    @property
    def solved(self) -> float:
        """Improved or certified: the issue's target metric."""
        return 100.0 - self.share("failure")


def scenarios_for(nodes: int, per_node: int, seeds: int, gpu: bool) -> list[Scenario]:
    out: list[Scenario] = []
    for k in PRIORITIES:
        for u in UTILISATIONS:
            spec = Spec(nodes, per_node, k, u, gpu=gpu)
            out += kept_scenarios(spec, seeds, first_seed=1000 * nodes + 100 * per_node)
    return out


def run_cell(scenarios: list[Scenario], limit: float, workers: int) -> Cell:
    cell = Cell()
    options = SolveOptions(time_limit=limit, workers=workers)
    for sc in scenarios:
        start = time.perf_counter()
        plan = pack(sc.nodes, sc.pods, policy=POLICY, options=options)
        cell.wall.append(time.perf_counter() - start)
        cell.outcomes[category(plan)] += 1
        cell.by_solver += any(
            st.improved and st.kind is StageKind.PLACE for st in plan.stats.stages
        )
        if check_plan(plan, sc.nodes, sc.pods, POLICY):
            cell.violations += 1
    return cell


def table(title: str, rows: list[tuple[str, int, Cell]]) -> str:
    head = (
        f"**{title}**\n\n| size | scenarios | better & optimal | better | default optimal "
        "| failure | improved or certified | CP-SAT beat the heuristic | wall p50 / max (s) "
        "| checker violations |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {size} | {n} | {c.share('better & optimal'):.1f} | {c.share('better'):.1f} "
        f"| {c.share('default optimal'):.1f} | {c.share('failure'):.1f} | **{c.solved:.1f}** "
        f"| {100.0 * c.by_solver / n:.1f} "
        f"| {statistics.median(c.wall):.2f} / {max(c.wall):.2f} | {c.violations} |"
        for size, n, c in rows
    ]
    return head + "\n".join(lines) + "\n"


def sweep(
    sizes: list[tuple[int, int]], seeds: int, limit: float, workers: int, gpu: bool
) -> list[tuple[str, int, Cell]]:
    rows = []
    for nodes, per_node in sizes:
        scenarios = scenarios_for(nodes, per_node, seeds, gpu)
        cell = run_cell(scenarios, limit, workers)
        label = f"{nodes} x {per_node}"
        rows.append((label, len(scenarios), cell))
        print(f"{'gpu' if gpu else 'cpu'} {label} limit={limit}s: {dict(cell.outcomes)} "
              f"solved={cell.solved:.1f}% violations={cell.violations}", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def large(seeds: int, limit: float, workers: int) -> str:
    """Time to a first improving plan at 500 nodes x 5000 pods with GPUs."""
    lines = [
        "| seed | K | u | pending | first improving plan (s) | improved at the end | wall (s) | scope nodes | variables | checker violations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    firsts: list[float] = []
    for i in range(seeds):
        k, u = PRIORITIES[i % len(PRIORITIES)], UTILISATIONS[(i + 2) % len(UTILISATIONS)]
        (sc,) = kept_scenarios(Spec(500, 10, k, u, gpu=True), 1, first_seed=50_000 + 97 * i)
        start = time.perf_counter()
        plan = pack(
            sc.nodes,
            sc.pods,
            policy=POLICY,
            options=SolveOptions(time_limit=limit, workers=workers),
        )
        wall = time.perf_counter() - start
        first = plan.stats.first_improvement_seconds
        if first is not None:
            firsts.append(first)
        bad = len(check_plan(plan, sc.nodes, sc.pods, POLICY))
        lines.append(
            f"| {sc.seed} | {k} | {u:.2f} | {sc.pending} | {'-' if first is None else f'{first:.2f}'} "
            f"| {plan.improves_on_default} | {wall:.2f} | {plan.stats.scope_nodes} | {plan.stats.variables} | {bad} |"
        )
        print(lines[-1], file=sys.stderr, flush=True)
    summary = f"First improving plan found in {len(firsts)} of {seeds} scenarios" + (
        f"; median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s." if firsts else "."
    )
    return "\n".join(lines) + "\n\n" + summary + "\n"


def workers_table(seeds: int, limit: float) -> str:
    lines = [
        "| workers | 32 x 8 improved or certified | 64 x 8 improved or certified |",
        "|---|---|---|",
    ]
    pools = {size: scenarios_for(*size, seeds, gpu=False) for size in [(32, 8), (64, 8)]}
    for workers in (1, 2, 4, 8):
        cells = [run_cell(pools[size], limit, workers) for size in [(32, 8), (64, 8)]]
        lines.append(f"| {workers} | {cells[0].solved:.1f} % | {cells[1].solved:.1f} % |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="kept scenarios per (size, K, u) at 1 s")
    p.add_argument(
        "--seeds-10s", type=int, default=1, help="kept scenarios per (size, K, u) at 10 s"
    )
    p.add_argument("--gpu-seeds", type=int, default=1, help="kept GPU scenarios per (size, K, u)")
    p.add_argument("--large-seeds", type=int, default=3, help="500 x 5000 GPU scenarios")
    p.add_argument("--large-limit", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--skip", action="append", default=[], choices=["10s", "gpu", "large", "workers"]
    )
    p.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = p.parse_args(argv)

    started = time.perf_counter()
    load = os.getloadavg()
    parts = [
        "Command: `make bench-packer` (`python -m benchmarks.bench_packer`). "
        f"Machine: {machine()} (2 cores, 24 GiB). CP-SAT workers: {args.workers}. "
        "The time limit includes building the problem and the CP-SAT model. Scenarios: the paper's "
        "generator (see benchmarks/packer_scenarios.py); per size, every (K, u) in "
        f"{PRIORITIES} x {UTILISATIONS} with a fixed number of kept seeds. Shares in %.\n",
        "Targets at 1 s: improved or certified in >= 95 % of scenarios up to 32 x 8, >= 80 % at 64 x 8.\n",
        "*CP-SAT beat the heuristic*: share of scenarios where a CP-SAT placement stage placed more "
        "than the single-move heuristic that runs first (the rest of the improvements are the "
        "heuristic's, then minimised in moves by CP-SAT). *wall*: problem building to finished plan.\n",
    ]
    rows = sweep(SIZES, args.seeds, 1.0, args.workers, gpu=False)
    parts.append(table(f"1 s limit, {args.seeds} seeds per (size, K, u)", rows))
    misses = [
        f"{size}: {c.solved:.1f} %"
        for size, _, c in rows
        if c.solved < (80.0 if size.startswith("64") else 95.0)
    ]
    parts.append("Targets missed at 1 s: " + (", ".join(misses) if misses else "none") + ".\n")
    if "10s" not in args.skip:
        rows = sweep(SIZES, args.seeds_10s, 10.0, args.workers, gpu=False)
        parts.append(table(f"10 s limit, {args.seeds_10s} seed(s) per (size, K, u)", rows))
    if "gpu" not in args.skip:
        gpu_sizes = [(8, 4), (16, 4), (32, 4), (64, 4)]
        rows = sweep(gpu_sizes, args.gpu_seeds, 1.0, args.workers, gpu=True)
        parts.append(
            table(
                f"GPU variant (8-GPU nodes, pods of 1/2/4/8 GPUs), 1 s, {args.gpu_seeds} seed(s) per (size, K, u)",
                rows,
            )
        )
    if "workers" not in args.skip:
        parts.append(
            "**CP-SAT workers at 1 s** (1 seed per (size, K, u); 2 cores, so more than 2 workers time-share)\n\n"
            + workers_table(1, 1.0)
        )
    if "large" not in args.skip:
        parts.append(
            f"**500 nodes x 5000 pods with GPUs** (limit {args.large_limit:.0f} s; the model is built on a "
            "neighbourhood of nodes, widened while time remains)\n\n"
            + large(args.large_seeds, args.large_limit, args.workers)
        )
    parts.append(NOTES)
    after = os.getloadavg()
    parts.append(
        f"Total benchmark time: {(time.perf_counter() - started) / 60:.1f} min. Load average "
        f"(1 min) at start {load[0]:.1f}, at the end {after[0]:.1f}: other jobs shared the 2 cores, "
        "which shortens every time-limited solve."
    )
    body = "\n".join(parts)
    print(body)
    if not args.no_write:
        write_section("Packing fallback (CP-SAT)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
