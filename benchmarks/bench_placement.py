"""Placement by popularity vs kube-scheduler's least-allocated spread, under a Zipf request stream.

Cluster: 16 nodes x 8 GPUs. 40 agents whose request rates follow the synthetic
traces of ``bench_forecast`` (Zipf(1.1) popularity, daily cycle, bursts, a
regime shift). At an evaluation time on day 3 the forecaster sees the two
previous days; its forecast decides the replica counts (EPLB's greedy rule:
each extra replica goes to the agent with the highest load per replica) and
drives the popularity policy. Replicas (1 GPU each) are created in bulk, as a
ReplicaSet creates them (all pending, which the extender sees and
pre-allocates), and placed one by one in random order by:

* least-allocated: kube-scheduler alone, NodeResourcesFit LeastAllocated on
  cpu and memory (0-100), ties broken at random;
* popularity: kube-scheduler with the extender, as deploy/scheduler-config.yaml
  sets it up: 10 x weight 5 x the extender's 0-10 score (all three policies at
  their default weights) plus the same least-allocated score.

Then requests arrive as a Poisson stream whose agent mix is the *actual* rates
of the next 15 minutes (not the forecast), each routed to a random replica of
its agent and queued at that replica's node. A node is one FIFO server whose
speed is proportional to its GPUs (the per-node queue of the issue: replicas
on one node share its PCIe, network and host). Rates are scaled so that the
whole cluster runs at a given mean utilisation.

Run: make bench-placement   (or: uv run python -m benchmarks.bench_placement)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import machine, percentile, write_section
from benchmarks.synthetic_traffic import DAY, generate
from scheduler_extender.domain.cluster import ClusterState, Snapshot
from scheduler_extender.domain.forecast.forecaster import ForecastSettings, forecast
from scheduler_extender.domain.forecast.series import SeriesBatch
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.resources import CPU, MEMORY
from scheduler_extender.domain.scoring.policy import ScoringContext
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, MAX_SCORE, Scorer
from tests.builders import GPU, node, pod

NODES, GPUS_PER_NODE, AGENTS = 16, 8, 40
EXTENDER_WEIGHT = 5  # deploy/scheduler-config.yaml
SERVICE_RATE = 1.0  # requests/s one GPU serves
SIMULATED_SECONDS = 1800.0
HORIZON = 15  # minutes

Placer = Callable[[Pod, Snapshot, Popularity, np.random.Generator], str]


def least_allocated(snapshot: Snapshot, names: list[str], pod_: Pod) -> NDArray[np.float64]:
    """NodeResourcesFit LeastAllocated over cpu and memory, 0..100 (kube-scheduler's default)."""
    scores = []
    for name in names:
        state = snapshot.nodes[name]
        parts = []
        for resource in (CPU, MEMORY):
            total = state.allocatable(resource)
            free = state.free(resource) - pod_.requests.get(resource)
            parts.append(100.0 * max(free, 0) / total if total else 0.0)
        scores.append(sum(parts) / len(parts))
    return np.array(scores)


def feasible(snapshot: Snapshot, pod_: Pod) -> list[str]:
    gpus = pod_.requests.get(GPU)
    return sorted(n for n, s in snapshot.nodes.items() if s.free(GPU) >= gpus)


def pick(scores: NDArray[np.float64], names: list[str], rng: np.random.Generator) -> str:
    best = np.flatnonzero(scores >= scores.max() - 1e-9)
    return names[int(rng.choice(best))]


def place_least_allocated(
    pod_: Pod, snapshot: Snapshot, _popularity: Popularity, rng: np.random.Generator
) -> str:
    names = feasible(snapshot, pod_)
    return pick(least_allocated(snapshot, names, pod_), names, rng)


def extender_placer(weights: Mapping[str, float]) -> Placer:
    """kube-scheduler with the extender: 10 x weight x the 0-10 extender score + least-allocated."""
    scorer = Scorer.from_weights(weights)

    def place(
        pod_: Pod, snapshot: Snapshot, popularity: Popularity, rng: np.random.Generator
    ) -> str:
        names = feasible(snapshot, pod_)
        rows = snapshot.columns.rows_of(names)
        table = scorer.score(pod_, names, rows, ScoringContext(snapshot, popularity, GPU))
        extender = EXTENDER_WEIGHT * 100.0 / MAX_SCORE * np.array(table.scores, dtype=float)
        return pick(extender + least_allocated(snapshot, names, pod_), names, rng)

    return place


def replica_counts(forecast_rates: Mapping[str, float], budget: int) -> dict[str, int]:
    """One replica each, then EPLB's greedy rule: the next to the highest load per replica."""
    counts = dict.fromkeys(forecast_rates, 1)
    for _ in range(budget - len(counts)):
        agent = max(counts, key=lambda a: forecast_rates[a] / counts[a])
        counts[agent] += 1
    return counts


@dataclass
class Outcome:
    p99: float
    p50: float
    max_predicted: float
    mean_predicted: float
    max_actual: float


def run_once(
    placer: Placer,
    forecast_rates: Mapping[str, float],
    actual_rates: Mapping[str, float],
    counts: Mapping[str, int],
    utilisation: float,
    rng: np.random.Generator,
) -> Outcome:
    state = ClusterState()
    for i in range(NODES):
        state.upsert_node(node(f"n{i:02d}", GPUS_PER_NODE))
    popularity = Popularity(dict(forecast_rates), source="forecast")
    # Controllers create replicas in bulk: all are pending (and counted) before
    # the scheduler places them one by one, in random order.
    pending = [pod(f"{a}-{i}", 1, agent=a) for a, count in counts.items() for i in range(count)]
    for new in pending:
        state.upsert_pod(new)
    rng.shuffle(pending)  # type: ignore[arg-type]  # numpy accepts any sequence
    where: dict[str, list[str]] = {agent: [] for agent in counts}
    for new in pending:
        chosen = placer(new, state.snapshot(), popularity, rng)
        state.upsert_pod(pod(new.name, 1, agent=new.agent, node=chosen, uid=new.uid))
        where[str(new.agent)].append(chosen)

    capacity = NODES * GPUS_PER_NODE * SERVICE_RATE
    scale = utilisation * capacity / sum(actual_rates.values())
    predicted_scale = utilisation * capacity / sum(forecast_rates.values())
    names = [f"n{i:02d}" for i in range(NODES)]
    predicted = dict.fromkeys(names, 0.0)
    actual = dict.fromkeys(names, 0.0)
    for agent, nodes in where.items():
        for name in nodes:
            predicted[name] += predicted_scale * forecast_rates[agent] / len(nodes)
            actual[name] += scale * actual_rates[agent] / len(nodes)
    latencies = simulate(where, {a: scale * r for a, r in actual_rates.items()}, rng)
    per_gpu = np.array(list(predicted.values())) / GPUS_PER_NODE
    return Outcome(
        p99=percentile(latencies, 99),
        p50=percentile(latencies, 50),
        max_predicted=float(per_gpu.max()),
        mean_predicted=float(per_gpu.mean()),
        max_actual=max(actual.values()) / GPUS_PER_NODE,
    )


def simulate(
    where: Mapping[str, list[str]], rates: Mapping[str, float], rng: np.random.Generator
) -> list[float]:
    """Poisson arrivals per agent, a random replica each, FIFO per node (Lindley)."""
    arrivals: dict[str, list[float]] = {}
    for agent, rate in rates.items():
        count = rng.poisson(rate * SIMULATED_SECONDS)
        times = np.sort(rng.uniform(0.0, SIMULATED_SECONDS, count))
        targets = rng.integers(0, len(where[agent]), count)
        for t, target in zip(times, targets, strict=True):
            arrivals.setdefault(where[agent][target], []).append(float(t))
    latencies: list[float] = []
    speed = GPUS_PER_NODE * SERVICE_RATE
    for times in arrivals.values():
        times.sort()
        service = rng.exponential(1.0 / speed, len(times))
        free_at = 0.0
        for t, s in zip(times, service, strict=True):
            start = max(t, free_at)
            free_at = start + s
            latencies.append(free_at - t)
    return latencies


def balanced_p99(utilisation: float) -> float:
    """The p99 of a cluster whose every node runs at exactly ``utilisation``: no placement beats it.

    A node is an M/M/1 queue of rate mu = its GPUs x the GPU's service rate, so
    at load rho its latency is Exp(mu (1 - rho)). A request waits longer than t
    with probability sum_i (rho_i / sum rho) exp(-mu (1 - rho_i) t) over the
    nodes; x exp(-mu (1 - x) t) is convex in x, so for a given total load
    (Jensen) equal loads give the smallest tail at every t, hence the smallest
    p99: ln(100) / (mu (1 - rho)).
    """
    mu = GPUS_PER_NODE * SERVICE_RATE
    return float(np.log(100.0) / (mu * (1.0 - utilisation)))


def scenario_rates(seed: int, at: int) -> tuple[dict[str, float], dict[str, float]]:
    """Forecast (peak over 15 min, from two days of history) and actual mean rates after ``at``."""
    traces = generate(agents=AGENTS, rare_agents=0, seed=seed)
    keep = [i for i in range(AGENTS) if np.isfinite(traces.rates[i, at])]
    history = traces.rates[keep, at - 2 * DAY : at + 1]
    agents = tuple(traces.agents[i] for i in keep)
    settings = ForecastSettings.for_step(60.0, horizon=HORIZON * 60.0, season=86400.0)
    result = forecast(SeriesBatch(agents, 0.0, 60.0, history), settings)
    predicted = {f.agent: max(f.peak, 1e-6) for f in result}
    actual = {
        agents[j]: max(float(traces.expected[i, at + 1 : at + 1 + HORIZON].mean()), 1e-6)
        for j, i in enumerate(keep)
    }
    return predicted, actual


PLACERS: dict[str, Placer] = {
    "least-allocated": place_least_allocated,
    "extender, default weights": extender_placer(DEFAULT_WEIGHTS),
    "extender, popularity alone": extender_placer({"popularity": 1.0}),
}
# (label, replica budget or None for 2 per agent, mean utilisations)
SCENARIOS = (
    ("replicas by forecast, 96 of 128 GPUs", 96, (0.5, 0.7, 0.8, 0.85, 0.9)),
    ("2 replicas per agent, 80 of 128 GPUs", None, (0.2, 0.3, 0.4)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()

    results: dict[tuple[str, float, str], list[Outcome]] = {}
    for trial in range(args.trials):
        at = 2 * DAY + 60 * (1 + 2 * trial) % DAY  # every 2 hours over day 3
        predicted, actual = scenario_rates(seed=7, at=at)
        for label, budget, utilisations in SCENARIOS:
            counts = replica_counts(predicted, budget) if budget else dict.fromkeys(predicted, 2)
            for utilisation in utilisations:
                for name, placer in PLACERS.items():
                    rng = np.random.default_rng(1000 + trial)  # same order and stream for all
                    outcome = run_once(placer, predicted, actual, counts, utilisation, rng)
                    results.setdefault((label, utilisation, name), []).append(outcome)

    rows = []
    met: list[str] = []
    missed: list[str] = []
    out_of_reach: list[str] = []  # no placement at all could cut p99 by 40% there
    for (label, utilisation, name), outcomes in results.items():
        base = results[(label, utilisation, "least-allocated")]
        p99 = float(np.median([o.p99 for o in outcomes]))
        base_p99 = float(np.median([o.p99 for o in base]))
        change = 1.0 - p99 / base_p99
        possible = 1.0 - balanced_p99(utilisation) / base_p99
        verdict = (
            f"best possible {-possible:+.0%}"
            if name == "least-allocated"
            else f"{-change:+.0%} ({'met' if change >= 0.4 else 'missed'})"
        )
        if name == "extender, default weights":
            where = f"{label.split(',')[0]} at {utilisation:.0%}"
            if change >= 0.4:
                met.append(where)
            else:
                (missed if possible >= 0.4 else out_of_reach).append(where)
        overloaded = sum(o.max_actual >= 1.0 for o in outcomes)
        rows.append(
            f"| {label} | {utilisation:.0%} | {name} "
            f"| {np.mean([o.max_predicted for o in outcomes]):.3f} / "
            f"{np.mean([o.mean_predicted for o in outcomes]):.3f} "
            f"| {np.mean([o.max_actual for o in outcomes]):.3f} | {overloaded}/{len(outcomes)} "
            f"| {_ms(float(np.median([o.p50 for o in outcomes])))} "
            f"| {_ms(p99)} | {_ms(float(np.mean([o.p99 for o in outcomes])))} "
            f"| {verdict} |"
        )
    body = "\n".join(
        [
            "Command: `make bench-placement` (`uv run python -m benchmarks.bench_placement`).",
            "",
            f"Machine: {machine()}. Quoted machine class for the targets: 2 cores, 24 GiB.",
            "",
            f"Setup (module docstring of `benchmarks/bench_placement.py`): {NODES} nodes x "
            f"{GPUS_PER_NODE} GPUs, {AGENTS} agents, replicas of 1 GPU created in bulk and "
            "placed one by one in random order. The forecast (2 days of history) sets the "
            "replica counts and drives the popularity policy; requests follow the *actual* "
            f"rates of the next {HORIZON} min (Zipf(1.1) popularity with the traces' daily "
            "cycle, bursts and regime shift), each to a random replica of its agent, queued "
            f"per node (FIFO, {GPUS_PER_NODE} x {SERVICE_RATE:g} req/s, exponential service), "
            f"{SIMULATED_SECONDS:.0f} s simulated per run, at {args.trials} evaluation times on "
            "day 3; both policies see the same replica order and request stream. A node over "
            "1.0 never drains, so its p99 grows with the simulated time: medians over runs are "
            "the headline, means are shown for the tail. "
            "Load per GPU is relative to the GPU's service rate (1.0 = saturated). "
            "Target: p99 at least 40% lower than least-allocated.",
            "",
            "| replicas | mean utilisation | placement | load per GPU, predicted max / mean "
            "| actual max load per GPU | runs with a node over 1.0 | p50 (median) "
            "| p99 (median of runs) | p99 (mean of runs) | p99 change (medians) |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Load average of the machine when the run ended: {os.getloadavg()[0]:.1f} (the "
            "simulation measures simulated time, so load does not change its figures).",
            "",
            "The least-allocated rows give, as *best possible*, the change a perfectly "
            "balanced cluster would bring: every node at the mean utilisation, whose p99 is "
            "ln(100) / (mu (1 - rho)) per node and which no placement can beat in this queue "
            "model (see `balanced_p99`: the tail is convex in a node's load).",
            "",
            f"With the default weights the -40% p99 target is met for: {', '.join(met) or 'none'}; "
            f"missed for: {', '.join(missed) or 'none'}; out of reach of any placement "
            f"(perfect balance gains less than 40%) for: {', '.join(out_of_reach) or 'none'}.",
            "",
            "Reading: when replica counts already follow the forecast (EPLB's rule), every "
            "replica carries about the same load, least-allocated's even spread by pod count is "
            "then close to balanced, and what is left to gain is bounded by the granularity of "
            "one replica's load and by forecast error. The extender sees the whole bulk of "
            "pending replicas and pre-allocates it heaviest first, which brings the predicted "
            "maximum load per GPU within a few percent of the mean (the predicted max / mean "
            "column); the actual maximum stays higher because bursts and the regime shift are "
            "not in the forecast, and that error is most of what separates these rows from "
            "perfect balance. The gain only becomes large near saturation, where a few percent "
            "of load on the busiest node decide whether its queue drains. When replica counts lag popularity (2 per agent), per-replica loads "
            "differ by an order of magnitude and keeping hot replicas apart cuts p99 by far "
            "more than 40% once least-allocated starts stacking them. The per-node FIFO model "
            "and the single scoring round (no preemption, no rescheduling, kube-scheduler's "
            "other plugins reduced to least-allocated) are simplifications; the Block paper's "
            "-49.5% comes from a real serving system, not from this model.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("Placement simulation (make bench-placement)", body)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"


if __name__ == "__main__":
    main()
