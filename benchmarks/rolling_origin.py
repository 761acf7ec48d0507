"""Rolling-origin evaluation of the forecaster against three baselines, at any step.

At each origin the forecaster gets only the history before it (what a
Prometheus range query would return then: NaN before an agent's first sample)
and forecasts ``horizon`` steps; the baselines get the same history:

* naive: the last value;
* seasonal naive: the value one season before each target;
* day mean: the mean of the last season.

Errors are scaled per agent and origin by the in-sample seasonal naive MAE of
that history (``mase_scale``, as the forecaster's own backtest), so MASE is
comparable across agents; an agent's MASE is the mean over its origins, the
reported figure the mean over agents.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from scheduler_extender.domain.forecast.accuracy import mase_scale
from scheduler_extender.domain.forecast.forecaster import ForecastSettings, Status, forecast
from scheduler_extender.domain.forecast.series import SeriesBatch, fill_gaps

# The real traces are read where they live, never copied into the repository:
# ../shared/data next to the checkout, or wherever SCHEDULER_EXTENDER_DATA points.
DATA = Path(
    os.environ.get(
        "SCHEDULER_EXTENDER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)
GENAI_FILE = DATA / "genai" / "requests-2024-11-15-to-11-30.csv"
BASELINES = ("naive", "seasonal naive", "day mean")


@dataclass(frozen=True)
class Grid:
    """Per-step counts of each agent; NaN before its first request (no series yet)."""

    agents: tuple[str, ...]
    values: NDArray[np.float64]  # (agents, points)
    step: float

    def aggregated(self, factor: int) -> Grid:
        """Sums of ``factor`` consecutive steps (NaN while any of them is)."""
        points = self.values.shape[1] // factor * factor
        blocks = self.values[:, :points].reshape(len(self.agents), -1, factor)
        return Grid(self.agents, blocks.sum(axis=2), self.step * factor)


def genai_requests(step: float, path: Path = GENAI_FILE) -> Grid:
    """Request counts per model (one agent each) and step, from the GenAI serving trace."""
    times: list[float] = []
    models: list[str] = []
    with path.open() as handle:
        for record in csv.DictReader(handle):
            stamp = datetime.fromisoformat(record["gmt_create"]).replace(tzinfo=UTC)
            times.append(stamp.timestamp())
            models.append(record["model"])
    agents = tuple(sorted(set(models)))
    index = {a: i for i, a in enumerate(agents)}
    stamps = np.array(times)
    start = stamps.min() // 86400 * 86400  # midnight: origins fall on whole steps of the day
    slots = ((stamps - start) // step).astype(int)
    values = np.zeros((len(agents), int(slots.max()) + 1))
    np.add.at(values, (np.array([index[m] for m in models]), slots), 1.0)
    for row in range(len(agents)):
        values[row, : int(np.flatnonzero(values[row])[0])] = np.nan
    return Grid(agents, values, step)


@dataclass
class Scores:
    """Per agent: scaled absolute errors per origin, of the forecaster and each baseline."""

    errors: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    covered: int = 0
    scored: int = 0
    covered_by_zero: int = 0  # targets a bound of 0 would already cover (actual 0)
    # The same split by the forecast (not by the outcome, which would bias it): where
    # the bound is 0 every actual 0 is covered whatever the model, so calibration
    # shows where the bound is positive.
    covered_positive: int = 0
    scored_positive: int = 0
    seconds: list[float] = field(default_factory=list)  # per forecast() call
    agents_per_call: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, agent: str, name: str, error: float) -> None:
        self.errors.setdefault(agent, {}).setdefault(name, []).append(error)

    def mase(self, name: str) -> float:
        per_agent = [np.mean(e[name]) for e in self.errors.values() if name in e]
        return float(np.mean(per_agent))

    def median_mase(self, name: str) -> float:
        """The typical agent's MASE: the mean can be carried by a few agents (a regime shift)."""
        per_agent = [np.mean(e[name]) for e in self.errors.values() if name in e]
        return float(np.median(per_agent))

    @property
    def coverage(self) -> float:
        return self.covered / self.scored

    @property
    def coverage_positive(self) -> float:
        """Coverage where the upper bound is above 0 (NaN: no such bound)."""
        return self.covered_positive / self.scored_positive if self.scored_positive else math.nan

    @property
    def ms_per_agent(self) -> float:
        return 1000 * float(np.mean(self.seconds)) / self.agents_per_call


@dataclass(frozen=True)
class Case:
    name: str
    grid: Grid
    horizon: float  # seconds
    every: float  # seconds between origins
    first_origin: float  # seconds after the grid's start
    history: float  # seconds of history given at each origin
    # The synthetic traces' own target, MASE at most this; None: the ratio target.
    mase_target: float | None = None
    # Forecasts that know the future (the generator's expected counts), scored the same way:
    # name -> a grid aligned with ``grid``.
    oracles: Mapping[str, Grid] = field(default_factory=dict)


def evaluate(case: Case, *, season: float = 86400.0, quantile: float = 0.9) -> Scores:
    """Origins every ``case.every`` seconds from ``case.first_origin`` on."""
    grid = case.grid
    settings = ForecastSettings.for_step(
        grid.step, horizon=case.horizon, season=season, quantile=quantile
    )
    h, period = settings.horizon, settings.season
    keep = round(case.history / grid.step)
    scores = Scores(agents_per_call=len(grid.agents))
    points = grid.values.shape[1]
    first, every = round(case.first_origin / grid.step), round(case.every / grid.step)
    for origin in range(first, points - h + 1, every):
        past = grid.values[:, max(0, origin - keep) : origin]
        batch = SeriesBatch(grid.agents, 0.0, grid.step, past)
        started = time.perf_counter()
        result = forecast(batch, settings)
        scores.seconds.append(time.perf_counter() - started)
        filled = fill_gaps(batch, gone_after=settings.gone_after)
        scale = mase_scale(
            filled.values, filled.first, end=filled.points, season=period, min_count=settings.window
        )
        actual = np.nan_to_num(grid.values[:, origin : origin + h])
        for row, f in enumerate(result):
            scores.statuses[f.status.value] = scores.statuses.get(f.status.value, 0) + 1
            if f.status is Status.GONE or not scale[row] > 0 or past.shape[1] < period:
                continue
            truth, seen = actual[row], filled.values[row]
            baselines = {
                "naive": np.full(h, seen[-1]),
                "seasonal naive": seen[-period : -period + h] if h < period else seen[-period:],
                "day mean": np.full(h, seen[-period:].mean()),
            }
            scores.add(f.agent, "forecaster", _mae(truth, np.array(f.point)) / scale[row])
            for name, oracle in case.oracles.items():
                baselines[name] = np.nan_to_num(oracle.values[row, origin : origin + h])
            for name, guess in baselines.items():
                scores.add(f.agent, name, _mae(truth, guess) / scale[row])
            upper = np.array(f.upper)
            hit = truth <= upper + 1e-9
            scores.covered += int(np.sum(hit))
            scores.covered_positive += int(np.sum(hit[upper > 0]))
            scores.scored_positive += int(np.sum(upper > 0))
            scores.covered_by_zero += int(np.sum(truth == 0))
            scores.scored += h
    return scores


def _mae(truth: NDArray[np.float64], guess: NDArray[np.float64]) -> float:
    return float(np.abs(truth - guess).mean())


def report(cases: list[Case], *, target_ratio: float, coverage: tuple[float, float]) -> str:
    """One table row per case: the forecaster's MASE, each baseline's, coverage, cost.

    Coverage twice: pooled over every scored point, whose floor is the share of
    actual 0 (any bound covers those), and where the upper bound is above 0, a
    split by the forecast, never by the outcome (excluding actual zeros would
    drop exactly the points the bound covers).
    """
    band = f"{coverage[0]}-{coverage[1]}"
    lines = [
        "| data, step, horizon | origins | forecaster MASE (median over agents) | naive | seasonal naive (1 d) | "
        f"day mean | ratio to best baseline | verdict (GenAI: ratio <= {target_ratio}; "
        f"synthetic: MASE as the 1-minute target) | coverage q=0.9, all points "
        f"(target {band}; floor: share of actual 0) | coverage where the bound > 0 "
        f"(share of points) | ms per agent per refresh |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    floors = []
    for case in cases:
        print(f"rolling-origin evaluation: {case.name}", flush=True)
        s = evaluate(case)
        if case.oracles:
            floors.append(
                f"{case.name}: " + ", ".join(f"{name} {s.mase(name):.3f}" for name in case.oracles)
            )
        base = {name: s.mase(name) for name in BASELINES}
        mase = s.mase("forecaster")
        ratio = mase / min(base.values())
        met = (
            verdict(ratio <= target_ratio)
            if case.mase_target is None
            else f"MASE <= {case.mase_target}: {verdict(mase <= case.mase_target)}"
        )
        positive = s.coverage_positive
        lines.append(
            f"| {case.name} | {len(s.seconds)} | {mase:.3f} "
            f"({s.median_mase('forecaster'):.3f}) | "
            + " | ".join(f"{base[n]:.3f}" for n in BASELINES)
            + f" | {ratio:.2f} | {met} | {s.coverage:.3f} "
            f"({verdict(coverage[0] <= s.coverage <= coverage[1])}; "
            f"floor {s.covered_by_zero / s.scored:.3f}) | {positive:.3f} "
            f"({verdict(coverage[0] <= positive <= coverage[1])}; "
            f"{s.scored_positive / s.scored:.2f}) | {s.ms_per_agent:.2f} |"
        )
    if floors:
        lines += [
            "",
            "Floors, the same MASE for forecasts that know the generator's expected counts "
            "(*expected*), or the same without the bursts to come (*expected without bursts*, "
            "which no forecast can foresee): " + "; ".join(floors) + ".",
        ]
    return "\n".join(lines)
