"""The numpy forecaster against statsforecast's models, on the same rolling origins.

Same data, origins, history, MASE scale and baselines as ``rolling_origin``
(the real GenAI trace at 10-minute and hourly steps, the synthetic traces at
30 minutes); origins are thinned (``--every``) because statsforecast fits
one series at a time and its seasonal models cost seconds per series.

Candidates from statsforecast: AutoETS (seasonal when the history holds two
seasons), MSTL over the daily and weekly seasons the history allows (trend by
non-seasonal AutoETS), and the intermittent-demand models Croston (optimized),
TSB, ADIDA and IMAPA. Each gets the agent's observed history (from its first
sample, gaps filled as the service fills them). Coverage of the q = 0.9 bound
is reported for the models that give one (ETS and MSTL: the upper end of the
80% interval).

Cost: wall time of the fits per agent and refresh; the numpy forecaster's is
one ``forecast()`` call for all agents, divided by their number.

Run: uv run --group bench python -m benchmarks.bench_statsforecast
(the ``bench`` dependency group holds statsforecast: it is not a runtime dependency).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from benchmarks import rolling_origin
from benchmarks.common import machine, write_section
from benchmarks.synthetic_traffic import generate
from scheduler_extender.domain.forecast.accuracy import mase_scale
from scheduler_extender.domain.forecast.forecaster import ForecastSettings, Status, forecast
from scheduler_extender.domain.forecast.series import SeriesBatch, fill_gaps

FloatArray = NDArray[np.float64]
QUANTILE = 0.9
# A model: (history from the first sample, horizon, seasons in steps) -> (point, upper or None).
Model = Callable[[FloatArray, int, tuple[int, ...]], tuple[FloatArray, FloatArray | None]]


def _statsforecast_models() -> dict[str, Model]:
    from statsforecast.models import ADIDA, IMAPA, MSTL, TSB, AutoETS, CrostonOptimized

    def ets(y: FloatArray, h: int, seasons: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
        season = seasons[0] if y.size >= 2 * seasons[0] else 1
        r = AutoETS(season_length=season).forecast(y=y, h=h, level=[80])
        return r["mean"], r["hi-80"]

    def mstl(y: FloatArray, h: int, seasons: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
        usable = [s for s in seasons if y.size >= 2 * s]
        if not usable:  # no whole two seasons: MSTL has nothing to decompose
            r = AutoETS(model="ZZN").forecast(y=y, h=h, level=[80])
            return r["mean"], r["hi-80"]
        model = MSTL(season_length=usable, trend_forecaster=AutoETS(model="ZZN"))
        r = model.forecast(y=y, h=h, level=[80])
        return r["mean"], r["hi-80"]

    def plain(make: Callable[[], object]) -> Model:
        def run(y: FloatArray, h: int, _seasons: tuple[int, ...]) -> tuple[FloatArray, None]:
            return make().forecast(y=y, h=h)["mean"], None  # type: ignore[attr-defined]

        return run

    return {
        "AutoETS": ets,
        "MSTL": mstl,
        "Croston": plain(CrostonOptimized),
        "TSB": plain(lambda: TSB(alpha_d=0.1, alpha_p=0.1)),
        "ADIDA": plain(ADIDA),
        "IMAPA": plain(IMAPA),
    }


@dataclass
class Tally:
    errors: dict[str, list[float]] = field(default_factory=dict)  # agent -> scaled errors
    covered: int = 0
    scored: int = 0
    seconds: float = 0.0
    fits: int = 0  # agent-refreshes

    def mase(self) -> float:
        return float(np.mean([np.mean(e) for e in self.errors.values()]))


def evaluate(
    case: rolling_origin.Case, every: int, seasons: tuple[float, ...], models: dict[str, Model]
) -> dict[str, Tally]:
    grid = case.grid
    settings = ForecastSettings.for_step(grid.step, horizon=case.horizon, season=seasons[0])
    h, period = settings.horizon, settings.season
    season_steps = tuple(round(s / grid.step) for s in seasons)
    keep = round(case.history / grid.step)
    first = round(case.first_origin / grid.step)
    step_origins = round(case.every / grid.step) * every
    names = ["numpy forecaster", *models, *rolling_origin.BASELINES]
    tallies = {name: Tally() for name in names}
    for origin in range(first, grid.values.shape[1] - h + 1, step_origins):
        print(f"  origin {origin}", flush=True)
        past = grid.values[:, max(0, origin - keep) : origin]
        batch = SeriesBatch(grid.agents, 0.0, grid.step, past)
        started = time.perf_counter()
        ours = forecast(batch, settings)
        tallies["numpy forecaster"].seconds += time.perf_counter() - started
        tallies["numpy forecaster"].fits += len(grid.agents)
        filled = fill_gaps(batch, gone_after=settings.gone_after)
        scale = mase_scale(
            filled.values, filled.first, end=filled.points, season=period, min_count=settings.window
        )
        actual = np.nan_to_num(grid.values[:, origin : origin + h])
        for row, f in enumerate(ours):
            if f.status is Status.GONE or not scale[row] > 0 or past.shape[1] < period:
                continue
            truth, seen = actual[row], filled.values[row]
            y = seen[int(filled.first[row]) :]
            guesses: dict[str, tuple[FloatArray, FloatArray | None]] = {
                "numpy forecaster": (np.array(f.point), np.array(f.upper)),
                "naive": (np.full(h, seen[-1]), None),
                "seasonal naive": (
                    seen[-period : -period + h] if h < period else seen[-period:],
                    None,
                ),
                "day mean": (np.full(h, seen[-period:].mean()), None),
            }
            for name, model in models.items():
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        point, upper = model(y, h, season_steps)
                    except Exception:  # a model that cannot fit this series: its naive
                        point, upper = np.full(h, y[-1]), None
                tallies[name].seconds += time.perf_counter() - started
                tallies[name].fits += 1
                point = np.maximum(np.nan_to_num(np.asarray(point, dtype=float)), 0.0)
                guesses[name] = (point, None if upper is None else np.asarray(upper, dtype=float))
            for name, (point, upper) in guesses.items():
                tally = tallies[name]
                error = float(np.abs(truth - point).mean() / scale[row])
                tally.errors.setdefault(f.agent, []).append(error)
                if upper is not None:
                    tally.covered += int(np.sum(truth <= np.maximum(upper, point) + 1e-9))
                    tally.scored += h
    return tallies


def table(cases: list[tuple[rolling_origin.Case, int]], models: dict[str, Model]) -> str:
    lines = [
        "| data, step, horizon | model | MASE | ratio to best baseline | "
        "coverage q=0.9 | ms per agent per refresh |",
        "|---|---|---|---|---|---|",
    ]
    for case, every in cases:
        print(f"statsforecast comparison: {case.name}", flush=True)
        tallies = evaluate(case, every, (86400.0, 7 * 86400.0), models)
        best = min(tallies[b].mase() for b in rolling_origin.BASELINES)
        for name, tally in tallies.items():
            if name in rolling_origin.BASELINES:
                continue
            coverage = f"{tally.covered / tally.scored:.3f}" if tally.scored else "-"
            lines.append(
                f"| {case.name} ({'all origins' if every == 1 else f'1 in {every} origins'}) "
                f"| {name} | {tally.mase():.3f} | "
                f"{tally.mase() / best:.2f} | {coverage} | "
                f"{1000 * tally.seconds / max(tally.fits, 1):.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    parser.add_argument(
        "--every",
        type=int,
        nargs=3,
        default=(24, 3, 6),
        metavar=("GENAI_10M", "GENAI_1H", "SYNTHETIC_30M"),
        help="score every n-th origin of each case (AutoETS takes seconds per series)",
    )
    parser.add_argument(
        "--intermittent-only",
        action="store_true",
        help="only the cheap intermittent-demand models (use with --every 1 1 1: every origin)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    models = _statsforecast_models()
    import_seconds = time.perf_counter() - started
    if args.intermittent_only:
        models = {k: v for k, v in models.items() if k not in ("AutoETS", "MSTL")}
    hour, day, week = 3600.0, 86400.0, 7 * 86400.0
    genai = rolling_origin.genai_requests(600.0)
    traces = generate()
    counts = rolling_origin.Grid(traces.agents, traces.rates * traces.step, traces.step)
    cases = [
        (rolling_origin.Case("GenAI, 10 min, 1 h ahead", genai, hour, 3 * hour, week, 2 * week), args.every[0]),
        (rolling_origin.Case("GenAI, 1 h, 6 h ahead", genai.aggregated(6), 6 * hour, 6 * hour, week, 2 * week), args.every[1]),
        (rolling_origin.Case("synthetic, 30 min, 30 min ahead", counts.aggregated(30), 1800.0, 1800.0, 2 * day, 2 * day), args.every[2]),
    ]  # fmt: skip
    body = "\n".join(
        [
            "Command: `make bench-statsforecast` (`uv run --group bench python -m "
            f"benchmarks.bench_statsforecast --every {' '.join(map(str, args.every))}"
            f"{' --intermittent-only' if args.intermittent_only else ''}`). "
            f"Machine: {machine()}. statsforecast import: {import_seconds:.1f} s.",
            "",
            table(cases, models),
        ]
    )
    print(body)
    if not args.no_write:
        title = "Forecast models: numpy against statsforecast"
        write_section(
            title + (", intermittent models at every origin" if args.intermittent_only else ""),
            body,
        )


if __name__ == "__main__":
    main()
