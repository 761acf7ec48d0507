"""``scheduler-extender forecast``: forecast agents from a saved Prometheus range query.

FILE is the JSON body of ``/api/v1/query_range``, e.g.::

    curl -s "$PROM/api/v1/query_range" \\
        --data-urlencode 'query=sum by (agent) (rate(agent_requests_total[1m]))' \\
        --data-urlencode "start=$(date -d '2 days ago' +%s)" \\
        --data-urlencode "end=$(date +%s)" --data-urlencode step=60 > history.json
    scheduler-extender forecast --input history.json --horizon 15m

The output (JSON on stdout) is documented in the README ("Forecasting").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from scheduler_extender.adapters.prometheus.response import (
    PrometheusResponseError,
    batch_from_matrix,
    infer_step,
    parse_matrix,
)
from scheduler_extender.commands.common import fail
from scheduler_extender.domain.forecast.durations import parse_duration
from scheduler_extender.domain.forecast.forecaster import (
    AgentForecast,
    Forecasts,
    ForecastSettings,
    forecast_seasons,
)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seasons(text: str) -> tuple[float, ...]:
    seasons = tuple(_duration(part.strip()) for part in text.split(","))
    if len(set(seasons)) != len(seasons):
        raise argparse.ArgumentTypeError(f"a season is repeated in {text!r}")
    return seasons


def _quantile(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid quantile {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"quantile must be between 0 and 1, got {text}")
    return value


def add_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "forecast",
        help="forecast per-agent request rates from a Prometheus query_range JSON answer",
        description="Read a Prometheus /api/v1/query_range JSON answer (a file, or - for "
        "stdin), fit and backtest a model per agent, and print the point forecast and the "
        "upper quantile for each step of the horizon as JSON.",
    )
    p.add_argument("--input", required=True, metavar="FILE", help="query_range JSON (- = stdin)")
    p.add_argument("--horizon", required=True, type=_duration, help="how far ahead, e.g. 15m")
    p.add_argument("--quantile", type=_quantile, default=0.9, help="upper quantile (default 0.9)")
    p.add_argument(
        "--season",
        type=_seasons,
        default=(86400.0,),
        help="season length, or several separated by commas, e.g. 1d,7d: each agent gets the "
        "one whose backtest is best (default 1d)",
    )
    p.add_argument(
        "--agent-label",
        dest="agent_label",
        default="agent",
        help="the label that names the agent (default: agent)",
    )
    p.add_argument(
        "--step", type=_duration, help="sampling step of the data (default: inferred from it)"
    )
    p.set_defaults(run=run)


def _read(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--input: cannot read {source}: {exc}")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        fail(f"--input: {source} is not JSON: {exc}")


def run(args: argparse.Namespace) -> int:
    try:
        series = parse_matrix(_read(args.input))
    except PrometheusResponseError as exc:
        fail(f"--input: not a Prometheus query_range answer: {exc}")
    step = args.step or infer_step(series)
    if step is None:
        fail("--input: no series has two samples to infer the step from; pass --step")
    for season in args.season:
        if round(season / step) < 2:
            fail(f"--season: {season:g}s is shorter than two steps of {step:g}s")
    settings = ForecastSettings.for_step(
        step, horizon=args.horizon, season=args.season[0], quantile=args.quantile
    )
    batch = batch_from_matrix(series, agent_label=args.agent_label, step=step)
    result = forecast_seasons(batch, settings, [round(s / step) for s in args.season])
    report = render(result, series_count=len(series), horizon=args.horizon, seasons=args.season)
    try:
        sys.stdout.write(json.dumps(report, indent=2, allow_nan=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (e.g. ``| head``) went away: not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def render(
    result: Forecasts, *, series_count: int, horizon: float, seasons: tuple[float, ...]
) -> dict[str, Any]:
    settings = result.settings
    return {
        "input": {
            "series": series_count,
            "agents": len(result.agents),
            "start": result.start,
            "end": result.end,
            "step_seconds": result.step,
            "points": result.points,
        },
        "horizon_seconds": horizon,
        "horizon_steps": settings.horizon,
        "season_seconds": seasons[0],
        "seasons_seconds": list(seasons),
        "quantile": settings.quantile,
        "agents": [
            _agent(f, result.timestamps(), result.step)
            for f in sorted(result.agents, key=lambda f: (-f.peak, f.agent))
        ],
    }


def _agent(f: AgentForecast, timestamps: list[float], step: float) -> dict[str, Any]:
    backtest = f.backtest
    season = f.params.get("season_steps")
    return {
        "agent": f.agent,
        "status": f.status.value,
        "model": f.model.value,
        # The season the model reads (None: a model without one).
        "season_seconds": None if season is None else season * step,
        "params": dict(f.params),
        "history_points": f.history,
        "peak": f.peak,
        "forecast": [
            {"timestamp": t, "point": p, "upper": u}
            for t, p, u in zip(timestamps, f.point, f.upper, strict=True)
        ],
        "backtest": None
        if backtest is None
        else {
            "mase": backtest.mase,
            "pinball_loss": backtest.pinball_loss,
            "coverage": backtest.coverage,
            "mae": backtest.mae,
            "scale": backtest.scale,
            "origins": backtest.origins,
        },
    }
