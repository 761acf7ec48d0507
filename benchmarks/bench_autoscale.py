"""Trace-driven simulation of the predictive autoscaler against an HPA-equivalent.

The same synthetic per-minute, per-agent traces (``benchmarks.synthetic_traffic``:
Zipf popularity, daily cycle, Poisson noise, bursts, a regime shift on the
last day, agents appearing and vanishing; fixed seeds) are replayed through
three policies, every 15 s, with replicas that need 2 or 5 minutes to start:

* reactive: the HPA algorithm on an external AverageValue metric
  (``ceil(observed / target)``, 0.1 tolerance, 300 s scale-down
  stabilisation, scale-up at most max(100 %, 4 pods) per 15 s); also, for
  context, the same with a scale-up tolerance of 0 (our tolerance rule);
* forecast-only: the forecast term alone (max of the q-quantile over the
  lead time, our tolerance rule and stabilisation, no reactive floor);
* forecast + correction: the controller's own code, ``ModelLoadForecaster``
  (refit every 60 s on two days of history) and ``domain.autoscaling.decide``.

Every policy sees the request rate of the last completed minute (what
``rate(...[1m])`` reports) and the forecast sees history up to that minute.
Scored over the last two days of each trace:

* SLO-violation minutes: time during which an agent's demand exceeded its
  ready capacity (ready replicas x targetRequestsPerReplica);
* GPU-replica-minutes: replicas held, starting ones included (1 GPU each);
* scale actions per hour: changes of an agent's replica count, all agents.

Run: ``make bench-autoscale`` (or ``python -m benchmarks.bench_autoscale``).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.common import machine, write_section
from benchmarks.synthetic_traffic import DAY, Traces, generate
from scheduler_extender.adapters.autoscaler.forecast import ModelLoadForecaster
from scheduler_extender.adapters.prometheus.forecasting import ForecastService
from scheduler_extender.adapters.prometheus.wiring import forecast_plan
from scheduler_extender.config import ControllerSettings, PrometheusSettings
from scheduler_extender.domain.autoscaling.outlook import LoadOutlook, OutlookRequest
from scheduler_extender.domain.autoscaling.policy import ScalingPolicy
from scheduler_extender.domain.autoscaling.replicas import (
    ScalingMemory,
    decide,
    recommend,
    replicas_for,
)
from scheduler_extender.domain.forecast.series import SeriesBatch

SYNC = 15.0  # seconds between decisions (the HPA's and the controller's default)
STEP = 60.0  # seconds per trace sample
HISTORY_DAYS = 2  # warm-up: the forecaster needs two seasons before Holt-Winters
SCORED_DAYS = 2
STARTUP_DELAYS = (120.0, 300.0)
SEEDS = (1, 2, 3, 4)
AGENTS, RARE_AGENTS, TOTAL_RATE = 20, 2, 800.0
TARGET = 10.0  # requests/s one replica serves
QUANTILE = 0.9
POLICIES = ("reactive", "reactive, scale-up tolerance 0", "forecast-only", "forecast+correction")
SCORED_RISE = 600.0  # seconds over which the plot's zoom looks for the sharpest rise
PLOT = Path(__file__).resolve().parent / "autoscale_trace.png"
SECTION = "Predictive autoscaling (make bench-autoscale)"


def scaling_policy(delay: float) -> ScalingPolicy:
    # leadTime is what a user would set: how long a new replica takes to serve.
    return ScalingPolicy(
        min_replicas=1,
        max_replicas=500,
        target_per_replica=TARGET,
        lead_time=delay,
        quantile=QUANTILE,
        headroom=0.0,
        stabilization_window=300.0,
        tolerance=0.1,
    )


# -- the cluster side: replicas that take time to start ----------------------------------


@dataclass
class Replicas:
    """One agent's replicas: the time each becomes ready (starting ones in the future)."""

    delay: float
    ready_at: list[float] = field(default_factory=list)
    actions: int = 0

    @property
    def count(self) -> int:
        return len(self.ready_at)

    def ready(self, now: float) -> int:
        return sum(1 for t in self.ready_at if t <= now)

    def scale(self, replicas: int, now: float) -> None:
        if replicas == self.count:
            return
        self.actions += 1
        if replicas > self.count:
            self.ready_at.extend([now + self.delay] * (replicas - self.count))
        else:  # a scale-down removes starting replicas first, as a ReplicaSet does
            self.ready_at = sorted(self.ready_at)[:replicas]


# -- the policies ---------------------------------------------------------------------------


class Policy:
    """Decides one agent's replica count every SYNC seconds."""

    def step(self, now: float, current: int, observed: float, outlook: LoadOutlook) -> int:
        raise NotImplementedError


@dataclass
class Reactive(Policy):
    """The HPA algorithm for an external metric with an AverageValue target.

    ``symmetric``: the HPA's default 0.1 tolerance both ways; otherwise a
    scale-up tolerance of 0 (``behavior.scaleUp.tolerance``, alpha since
    Kubernetes 1.33), which is the tolerance rule of our controller.
    """

    rules: ScalingPolicy
    symmetric: bool = True
    history: list[tuple[float, int]] = field(default_factory=list)

    def step(self, now: float, current: int, observed: float, outlook: LoadOutlook) -> int:
        rules = self.rules
        need = observed / rules.target_per_replica
        if self.symmetric:
            kept = abs(need / current - 1) <= rules.tolerance
            recommendation = current if kept else replicas_for(need, 1.0)
        else:
            recommendation, _ = recommend(need, current, rules.tolerance)
        self.history = [(t, r) for t, r in self.history if now - t < rules.stabilization_window]
        self.history.append((now, recommendation))
        desired = recommendation
        if recommendation < current:
            desired = min(current, max(r for _, r in self.history))
        desired = min(desired, max(2 * current, current + 4))  # scale-up rate limit
        return min(max(desired, rules.min_replicas), rules.max_replicas)


@dataclass
class ForecastOnly(Policy):
    """The forecast term alone: no reactive floor and no observed-rate guard."""

    rules: ScalingPolicy
    history: list[tuple[float, int]] = field(default_factory=list)

    def step(self, now: float, current: int, observed: float, outlook: LoadOutlook) -> int:
        rules = self.rules
        if outlook.quantile_peak is None:
            return current  # nothing to go on
        need = outlook.quantile_peak * (1 + rules.headroom) / rules.target_per_replica
        recommendation, _ = recommend(need, current, rules.tolerance)
        self.history = [(t, r) for t, r in self.history if now - t < rules.stabilization_window]
        self.history.append((now, recommendation))
        desired = recommendation
        if recommendation < current:
            desired = min(current, max(r for _, r in self.history))
        return min(max(desired, rules.min_replicas), rules.max_replicas)


@dataclass
class Predictive(Policy):
    """The controller's arithmetic, as ``service.autoscaler`` calls it."""

    rules: ScalingPolicy
    memory: ScalingMemory | None = None

    def step(self, now: float, current: int, observed: float, outlook: LoadOutlook) -> int:
        memory = self.memory or ScalingMemory.start(now, current)
        decision, self.memory = decide(self.rules, current, outlook, memory, now)
        return decision.replicas


def make_policy(name: str, rules: ScalingPolicy) -> Policy:
    match name:
        case "reactive":
            return Reactive(rules)
        case "reactive, scale-up tolerance 0":
            return Reactive(rules, symmetric=False)
        case "forecast-only":
            return ForecastOnly(rules)
        case "forecast+correction":
            return Predictive(rules)
    raise ValueError(name)


# -- the trace as the controller's rate source -----------------------------------------------


@dataclass
class TraceRates:
    """``RateSource`` over a trace: the sample stamped T is the rate over [T-60 s, T)."""

    traces: Traces
    start: float  # unix seconds of minute 0
    now: float = 0.0  # what the simulation clock says; nothing later is visible

    def _minute(self, stamp: float) -> int:
        return int((stamp - self.start) // STEP) - 1  # the minute that ended at ``stamp``

    def rate_history(self, *, start: float, end: float, step: float) -> SeriesBatch:
        end = min(end, math.floor(self.now / step) * step)
        points = round((end - start) / step) + 1
        first = self._minute(start)
        values = np.full((len(self.traces.agents), points), np.nan)
        lo, hi = max(first, 0), first + points
        values[:, lo - first :] = self.traces.rates[:, lo:hi]
        return SeriesBatch(self.traces.agents, start, step, values)

    def current_rates(self) -> Mapping[str, float]:
        minute = self._minute(math.floor(self.now / STEP) * STEP)
        rates = self.traces.rates[:, minute]
        return {
            a: float(rates[i]) for i, a in enumerate(self.traces.agents)
            if not math.isnan(rates[i])
        }  # fmt: skip

    def close(self) -> None:
        pass


# -- one simulation --------------------------------------------------------------------------


@dataclass
class Score:
    violation_minutes: float = 0.0
    gpu_minutes: float = 0.0
    actions: int = 0
    hours: float = 0.0

    def add(self, other: Score) -> None:
        self.violation_minutes += other.violation_minutes
        self.gpu_minutes += other.gpu_minutes
        self.actions += other.actions
        self.hours += other.hours


@dataclass
class Recording:
    """Per-tick series of one agent, for the plot."""

    agent: int
    demand: list[float] = field(default_factory=list)
    forecast: list[float] = field(default_factory=list)
    capacity: dict[str, list[float]] = field(default_factory=dict)


def simulate(
    seed: int, record_agent: int | None = None, scored_days: float = SCORED_DAYS
) -> tuple[dict[tuple[float, str], Score], Recording | None]:
    traces = generate(
        agents=AGENTS, rare_agents=RARE_AGENTS, days=HISTORY_DAYS + SCORED_DAYS,
        total_rate=TOTAL_RATE, seed=seed,
    )  # fmt: skip
    demand = np.nan_to_num(traces.rates)  # an agent that does not exist has no demand
    start = 1_800_000_000.0 - 1_800_000_000.0 % (DAY * STEP)  # midnight, so the day aligns
    source = TraceRates(traces, start)
    # The service as the controller builds it, with the trace's step, season and history.
    plan = forecast_plan(
        PrometheusSettings(step=STEP, season=DAY * STEP, history=HISTORY_DAYS * DAY * STEP)
    )
    forecaster = ModelLoadForecaster(
        ForecastService(source, plan), refresh=ControllerSettings().forecast_refresh
    )
    agents = traces.agents
    first_tick = start + HISTORY_DAYS * DAY * STEP
    ticks = int(scored_days * DAY * STEP / SYNC)
    runs: dict[tuple[float, str], list[tuple[Policy, Replicas]]] = {}
    for delay in STARTUP_DELAYS:
        rules = scaling_policy(delay)
        for name in POLICIES:
            runs[(delay, name)] = []
            for a in range(len(agents)):
                replicas = Replicas(delay)
                initial = max(replicas_for(demand[a, HISTORY_DAYS * DAY - 1], TARGET), 1)
                replicas.ready_at = [first_tick - delay] * initial
                runs[(delay, name)].append((make_policy(name, rules), replicas))
    requests = {
        delay: [OutlookRequest(agent, delay, QUANTILE) for agent in agents]
        for delay in STARTUP_DELAYS
    }
    scores = {key: Score(hours=scored_days * 24.0) for key in runs}
    recording = None if record_agent is None else Recording(record_agent)
    for tick in range(ticks):
        now = first_tick + tick * SYNC
        minute = int((now - start) // STEP)
        source.now = now
        outlooks = forecaster.outlooks([r for rs in requests.values() for r in rs], now)
        for (delay, name), lanes in runs.items():
            score = scores[(delay, name)]
            for a, (policy, replicas) in enumerate(lanes):
                outlook = outlooks[requests[delay][a]]
                observed = demand[a, minute - 1]
                replicas.scale(policy.step(now, replicas.count, observed, outlook), now)
                ready = replicas.ready(now + SYNC)  # capacity over the coming tick
                if demand[a, minute] > ready * TARGET:
                    score.violation_minutes += SYNC / 60.0
                score.gpu_minutes += replicas.count * SYNC / 60.0
                if recording is not None and a == recording.agent and delay == STARTUP_DELAYS[-1]:
                    recording.capacity.setdefault(name, []).append(ready * TARGET)
        if recording is not None:
            recording.demand.append(float(demand[recording.agent, minute]))
            outlook = outlooks[requests[STARTUP_DELAYS[-1]][recording.agent]]
            recording.forecast.append(outlook.quantile_peak or math.nan)
    for key, lanes in runs.items():
        scores[key].actions = sum(replicas.actions for _, replicas in lanes)
    return scores, recording


# -- reporting -------------------------------------------------------------------------------


def plot(recording: Recording, seed: int, out: Path) -> None:
    """The whole scored period, and a zoom on its sharpest rise (where the policies differ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demand = np.array(recording.demand)
    hours = np.arange(demand.size) * SYNC / 3600.0
    rise = int(SCORED_RISE / SYNC)
    sharpest = int(np.argmax(demand[rise:] - demand[:-rise])) + rise
    zoom = slice(max(sharpest - 4 * rise, 0), min(sharpest + 8 * rise, demand.size))
    colours = {"reactive": "tab:red", "forecast-only": "tab:orange",
               "forecast+correction": "tab:green"}  # fmt: skip
    fig, axes = plt.subplots(2, 1, figsize=(12, 8), dpi=110)
    for ax, part in zip(axes, (slice(None), zoom), strict=True):
        ax.plot(hours[part], demand[part], color="black", lw=0.8, label="demand")
        ax.plot(hours[part], np.array(recording.forecast)[part], color="tab:purple", lw=0.8,
                alpha=0.8, label=f"q{QUANTILE:g} forecast, peak over the lead time")  # fmt: skip
        for name, capacity in recording.capacity.items():
            if name in colours:  # the tolerance variant of reactive would hide the others
                ax.step(hours[part], np.array(capacity)[part], where="post", color=colours[name],
                        lw=1.1, label=f"ready capacity, {name}")  # fmt: skip
        ax.set_ylabel("requests per second")
        ax.grid(alpha=0.3)
    axes[0].set_title(
        f"Agent {recording.agent} of trace seed {seed}: startup delay "
        f"{STARTUP_DELAYS[-1] / 60:g} min, {TARGET:g} req/s per replica"
    )
    axes[1].set_title("zoom on the sharpest rise")
    axes[1].set_xlabel("hours into the scored period")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


Result = tuple[int, dict[tuple[float, str], Score], Recording | None, float]


def _run(job: tuple[int, bool]) -> Result:
    seed, record = job
    started = time.perf_counter()
    scores, recording = simulate(seed, record_agent=busiest_agent(seed) if record else None)
    return seed, scores, recording, time.perf_counter() - started


def busiest_agent(seed: int) -> int:
    traces = generate(
        agents=AGENTS, rare_agents=RARE_AGENTS, days=HISTORY_DAYS + SCORED_DAYS,
        total_rate=TOTAL_RATE, seed=seed,
    )  # fmt: skip
    return int(np.argmax(np.nanmean(traces.rates, axis=1)))


def iterate(seeds: Sequence[int], workers: int) -> Iterator[Result]:
    """Simulate every seed; the first one also records its busiest agent for the plot."""
    jobs = [(seed, i == 0) for i, seed in enumerate(seeds)]
    if workers <= 1:
        yield from map(_run, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_run, jobs)


def report(
    totals: Mapping[tuple[float, str], Score],
    per_seed: Mapping[int, Mapping[tuple[float, str], Score]],
    seconds: float,
    seeds: Sequence[int],
) -> tuple[str, bool]:
    lines = [
        "Command: `make bench-autoscale` (`python -m benchmarks.bench_autoscale`).",
        "",
        f"Machine: {machine()}. Wall time {seconds:.0f} s.",
        "",
        f"Traces: `benchmarks.synthetic_traffic.generate` with seeds {', '.join(map(str, seeds))}: "
        f"{AGENTS} Zipf(1.1) agents plus {RARE_AGENTS} rare ones, {TOTAL_RATE:g} req/s in total, "
        "daily cycle, Poisson noise, bursts (2-5x for 5-30 min), a regime shift on the last day, "
        f"agents appearing and vanishing. {HISTORY_DAYS} days of history warm the forecaster up; "
        f"the last {SCORED_DAYS} days are scored. Every agent: {TARGET:g} req/s per replica, "
        f"1 GPU per replica, minReplicas 1, decisions every {SYNC:g} s from the rate of the last "
        f"completed minute, 300 s scale-down stabilisation, tolerance 0.1 (the HPA applies it "
        f"both ways; our controller only to scale-downs, and so does the second reactive row, "
        f"which isolates that rule); the predictive policies use leadTime = the startup delay, "
        f"quantile {QUANTILE:g}, headroom 0.",
        "",
        "SLO-violation minutes: agent-minutes with demand above ready capacity. "
        "GPU-replica-minutes: replicas held, starting ones included. Actions: replica-count "
        "changes per simulated hour, all agents together. Changes are relative to reactive.",
        "",
        "| startup delay | policy | SLO-violation min | GPU-replica-min | actions/h "
        "| violations vs reactive | GPU vs reactive |",
        "|---|---|---|---|---|---|---|",
    ]
    met = True
    for delay in STARTUP_DELAYS:
        base = totals[(delay, "reactive")]
        for name in POLICIES:
            s = totals[(delay, name)]
            fewer = 1 - s.violation_minutes / base.violation_minutes
            more = s.gpu_minutes / base.gpu_minutes - 1
            rel = "-" if name == "reactive" else f"{-fewer:+.1%}"
            gpu = "-" if name == "reactive" else f"{more:+.1%}"
            lines.append(
                f"| {delay / 60:g} min | {name} | {s.violation_minutes:,.0f} | "
                f"{s.gpu_minutes:,.0f} | {s.actions / s.hours:.1f} | {rel} | {gpu} |"
            )
            if name == "forecast+correction":
                met = met and fewer >= 0.6 and more <= 0.10
    lines += ["", "Against the stronger baseline, reactive with a scale-up tolerance of 0:", ""]
    for delay in STARTUP_DELAYS:
        ours, base = totals[(delay, "forecast+correction")], totals[(delay, POLICIES[1])]
        lines.append(
            f"- {delay / 60:g} min: forecast+correction has "
            f"{1 - ours.violation_minutes / base.violation_minutes:.0%} fewer SLO-violation "
            f"minutes for {ours.gpu_minutes / base.gpu_minutes - 1:+.1%} GPU-replica-minutes."
        )
    ratios = [
        totals[(d, "forecast+correction")].actions / totals[(d, "reactive")].actions
        for d in STARTUP_DELAYS
    ]
    lines += [
        "",
        f"The price besides GPUs: forecast+correction changes replica counts "
        f"{min(ratios):.1f}-{max(ratios):.1f} times as often as reactive (it follows ramps one "
        "replica at a time instead of waiting for a 10 % step).",
    ]
    lines += [
        "",
        "Per seed, forecast+correction against reactive (violations, GPU-replica-minutes):",
        "",
    ]
    for seed, scores in per_seed.items():
        parts = []
        for delay in STARTUP_DELAYS:
            ours, base = scores[(delay, "forecast+correction")], scores[(delay, "reactive")]
            parts.append(
                f"{delay / 60:g} min: {-(1 - ours.violation_minutes / base.violation_minutes):+.0%}, "
                f"{ours.gpu_minutes / base.gpu_minutes - 1:+.1%}"
            )
        lines.append(f"- seed {seed}: " + "; ".join(parts))
    verdict = "met" if met else "NOT met"
    lines += [
        "",
        f"Target (at least 60% fewer SLO-violation minutes than reactive with at most 10% more "
        f"GPU-replica-minutes, for every startup delay): **{verdict}**.",
        "",
        f"![demand, forecast and ready capacity of one agent](benchmarks/{PLOT.name})",
    ]
    return "\n".join(lines), met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--no-write", action="store_true", help="print, do not update BENCHMARKS.md"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    totals: dict[tuple[float, str], Score] = {}
    per_seed: dict[int, dict[tuple[float, str], Score]] = {}
    for seed, scores, recording, seconds in iterate(args.seeds, args.workers):
        print(f"seed {seed}: simulated in {seconds:.0f} s")
        per_seed[seed] = scores
        for key, score in scores.items():
            totals.setdefault(key, Score()).add(score)
        if recording is not None:
            plot(recording, seed, PLOT)
    body, met = report(totals, per_seed, time.perf_counter() - started, args.seeds)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    if not met:
        print("target not met")


if __name__ == "__main__":
    main()
