"""The forecaster end to end on synthetic series with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scheduler_extender.domain.forecast.forecaster import (
    AgentForecast,
    ForecastSettings,
    Model,
    Status,
    forecast,
    forecast_seasons,
)
from scheduler_extender.domain.forecast.series import SeriesBatch

# Small geometry so the tests are quick: 5-step horizon, a season of 48 steps.
SETTINGS = ForecastSettings(
    horizon=5, season=48, window=60, burn_in=20, gone_after=6, profile_smoothing=5
)


def run(
    rows: dict[str, np.ndarray], settings: ForecastSettings = SETTINGS
) -> dict[str, AgentForecast]:
    agents = tuple(rows)
    width = max(len(v) for v in rows.values())
    values = np.full((len(agents), width), np.nan)
    for i, v in enumerate(rows.values()):
        values[i, width - len(v) :] = v  # right-aligned: shorter rows are newer agents
    return dict(forecast(SeriesBatch(agents, 0.0, 60.0, values), settings).by_agent())


def test_a_constant_is_forecast_exactly_with_no_spread() -> None:
    f = run({"flat": np.full(300, 4.0)})["flat"]
    assert f.status is Status.OK
    assert f.point == pytest.approx((4.0,) * 5)
    assert f.upper == pytest.approx((4.0,) * 5)
    assert f.backtest is not None
    assert f.backtest.mase is None  # a series that never changed has no scale
    assert f.backtest.mae == pytest.approx(0.0)
    assert f.backtest.coverage == 1.0


def test_a_linear_trend_is_extrapolated() -> None:
    f = run({"ramp": np.arange(300, dtype=float)})["ramp"]
    assert f.model in (Model.HOLT, Model.NAIVE)
    # Holt is damped (phi 0.9), so it under-shoots a perfect ramp a little; the
    # naive forecast stays at 299. Either way: close to the next values.
    assert np.all(np.abs(np.array(f.point) - np.arange(300, 305)) <= 5.0)
    assert f.point[0] >= 299.0


def seasonal_series(
    days: int, season: int, noise: float, seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(days * season + 5)
    truth = 20.0 + 8.0 * np.sin(2 * np.pi * t / season)
    observed = truth + np.random.default_rng(seed).normal(0, noise, t.size)
    return observed, truth


def test_a_seasonal_series_uses_the_season_and_beats_seasonal_naive() -> None:
    observed, truth = seasonal_series(6, 48, noise=1.0)
    history, future = observed[:-5], truth[-5:]
    f = run({"daily": history})["daily"]
    assert f.model in (Model.HOLT_WINTERS, Model.SEASONAL_NAIVE)
    assert np.abs(np.array(f.point) - future).max() < 2.0
    assert f.backtest is not None
    assert f.backtest.mase is not None
    assert f.backtest.mase < 0.9  # seasonal naive pays the noise twice


def test_an_exactly_repeating_day_is_forecast_exactly_by_a_seasonal_model() -> None:
    day = np.where(np.arange(48) < 24, 10.0, 2.0)  # a square wave: no smoothing gets it exact
    history = np.tile(day, 7)[:-5]
    f = run({"square": history})["square"]
    # Both are exact here; the seasonal median is preferred on ties.
    assert f.model is Model.SEASONAL_MEDIAN
    assert f.point == pytest.approx(tuple(np.tile(day, 7)[-5:]))


def test_a_step_change_is_followed_exactly_by_naive() -> None:
    # Flat, then a new level from the start of the second backtest window on.
    history = np.concatenate([np.full(180, 3.0), np.full(60, 8.0)])
    f = run({"step": history})["step"]
    assert f.model is Model.NAIVE
    assert f.point == pytest.approx((8.0,) * 5)


def test_holt_winters_needs_two_seasons_of_history() -> None:
    observed, _ = seasonal_series(6, 48, noise=0.5)
    short = observed[-int(1.9 * 48) :]  # under two seasons: no Holt-Winters
    f = run({"long": observed, "short": short})
    assert f["long"].model is Model.HOLT_WINTERS
    assert f["short"].model is not Model.HOLT_WINTERS
    assert f["short"].status is Status.NEW


def test_the_upper_quantile_covers_about_q_of_future_values() -> None:
    # 30 agents with i.i.d. noise: each one's coverage also depends on how far
    # its point forecast happens to be off, so average over agents.
    rng = np.random.default_rng(4)
    history = {f"a{i}": rng.normal(50.0, 5.0, 400) for i in range(30)}
    future = rng.normal(50.0, 5.0, (30, 1000, 5))
    for q in (0.75, 0.9):
        settings = ForecastSettings(horizon=5, season=48, quantile=q, window=150, burn_in=50)
        forecasts = run(history, settings)
        uppers = np.array([forecasts[a].upper for a in history])  # (agents, horizon)
        covered = float(np.mean(future <= uppers[:, None, :]))
        assert covered == pytest.approx(q, abs=0.04)
        backtested = [f.backtest.coverage for f in forecasts.values() if f.backtest]
        assert float(np.mean(backtested)) == pytest.approx(q, abs=0.04)
        assert all(
            u >= p for f in forecasts.values() for u, p in zip(f.upper, f.point, strict=True)
        )


def test_agents_with_no_one_or_a_few_points() -> None:
    empty = np.full(300, np.nan)
    f = run({"none": empty, "one": np.array([3.0]), "few": np.array([1.0, 2.0, 6.0, 4.0])})
    assert f["none"].status is Status.GONE
    assert f["none"].point == (0.0,) * 5
    assert f["none"].model is Model.NONE
    assert f["one"].status is Status.NEW
    assert f["one"].point == (3.0,) * 5
    assert f["one"].backtest is None
    assert f["few"].status is Status.NEW
    assert f["few"].backtest is None
    assert 2.0 < f["few"].point[0] < 6.0
    assert f["few"].upper[0] == 6.0  # the recent maximum bounds a short history


def test_a_new_agent_with_some_history_gets_a_shorter_backtest() -> None:
    f = run({"old": np.full(300, 1.0), "new": np.linspace(0.0, 5.0, 120)})["new"]
    assert f.status is Status.NEW
    assert f.backtest is not None
    assert f.backtest.origins < 60
    assert f.point[0] >= 4.5


def test_vanished_and_lagging_agents() -> None:
    ongoing = np.full(300, 2.0)
    gone = np.concatenate([np.full(290, 2.0), np.full(10, np.nan)])
    lagging = np.concatenate([np.full(297, 2.0), np.full(3, np.nan)])
    f = run({"ongoing": ongoing, "gone": gone, "lagging": lagging})
    assert f["gone"].status is Status.GONE
    assert f["gone"].peak == 0.0
    assert f["lagging"].status is Status.OK
    assert f["lagging"].point == pytest.approx((2.0,) * 5)


def test_rare_agents_with_mostly_zeros_stay_finite_and_small() -> None:
    rng = np.random.default_rng(5)
    rare = rng.poisson(0.05, 400) / 60.0
    f = run({"rare": rare, "zeros": np.zeros(400)})
    for agent in f.values():
        assert np.all(np.isfinite(agent.point))
        assert np.all(np.isfinite(agent.upper))
        assert min(agent.point) >= 0.0
    assert f["rare"].peak < 0.05
    assert f["zeros"].peak == 0.0


def test_fitting_agents_together_or_one_by_one_gives_the_same_answer() -> None:
    rng = np.random.default_rng(6)
    rows = {f"a{i}": rng.gamma(2.0, 3.0) + rng.normal(0, 1.0, 300).cumsum() * 0.1 for i in range(5)}
    together = run(rows, SETTINGS)
    alone = run(rows, dataclasses.replace(SETTINGS, chunk=1))
    for agent, f in together.items():
        assert f.point == pytest.approx(alone[agent].point)
        assert f.model is alone[agent].model


def test_settings_from_durations_and_their_validation() -> None:
    s = ForecastSettings.for_step(60.0, horizon=900.0, season=86400.0)
    assert (s.horizon, s.season, s.window, s.burn_in, s.gone_after) == (15, 1440, 360, 120, 10)
    assert s.profile_smoothing % 2 == 1
    assert ForecastSettings.for_step(60.0, horizon=61.0, season=3600.0).horizon == 2
    with pytest.raises(ValueError, match="quantile"):
        ForecastSettings(horizon=5, season=48, quantile=1.0)
    with pytest.raises(ValueError, match="season"):
        ForecastSettings(horizon=5, season=1)


def test_sparse_counts_are_forecast_by_their_median() -> None:
    # A few requests now and then (a Poisson rate of 0.2 per step): the MAE-optimal
    # point forecast is 0, which neither carrying the last value nor a smoothed mean gives.
    rng = np.random.default_rng(7)
    f = run({"sparse": rng.poisson(0.2, 7 * 48).astype(float)})["sparse"]
    assert f.model in (Model.MEDIAN, Model.SEASONAL_MEDIAN)
    assert f.point == pytest.approx((0.0,) * 5)
    assert max(f.upper) >= 1.0  # the upper quantile still expects requests


@pytest.mark.parametrize("step", [30.0, 300.0, 3600.0])
def test_every_step_gets_a_backtested_seasonal_forecast(step: float) -> None:
    # 60 days (capped at 4000 points) of a daily cycle: the history is used, not "new".
    per_day = round(86400 / step)
    points = min(60 * per_day, 4000)
    t = np.arange(points)
    history = 50 + 40 * np.sin(2 * np.pi * t / per_day)
    settings = ForecastSettings.for_step(step, horizon=4 * step, season=86400.0)
    batch = SeriesBatch(("cyclic",), 0.0, step, history[None, :])
    f = forecast(batch, settings).by_agent()["cyclic"]
    assert f.status is Status.OK
    assert f.model in (Model.HOLT_WINTERS, Model.SEASONAL_NAIVE, Model.SEASONAL_MEDIAN)
    truth = 50 + 40 * np.sin(2 * np.pi * (points + np.arange(4)) / per_day)
    assert f.point == pytest.approx(tuple(truth), abs=2.0)


def test_with_a_daily_and_a_weekly_season_each_agent_gets_the_one_that_fits() -> None:
    # Hourly steps, five weeks: a daily cycle, and quiet weekends (days 5 and 6 of each week).
    hours = np.arange(5 * 168 - 51)  # history ends at 21:00 on a Friday; Saturday is 3 h on
    weekday = (hours // 24) % 7 < 5
    weekly = np.where(weekday, 1.0, 0.3) * (50 + 30 * np.sin(2 * np.pi * hours / 24))
    flat_daily = 50 + 30 * np.sin(2 * np.pi * hours / 24)
    batch = SeriesBatch(("weekly", "daily"), 0.0, 3600.0, np.stack([weekly, flat_daily]))
    settings = ForecastSettings.for_step(3600.0, horizon=6 * 3600.0, season=86400.0)
    both = forecast_seasons(batch, settings, [24, 168]).by_agent()
    assert both["weekly"].params["season_steps"] == 168
    nxt = np.arange(hours.size, hours.size + 6)
    truth = np.where((nxt // 24) % 7 < 5, 1.0, 0.3) * (50 + 30 * np.sin(2 * np.pi * nxt / 24))
    assert both["weekly"].point == pytest.approx(tuple(truth), abs=3.0)
    daily_only = forecast(batch, settings).by_agent()["weekly"]
    # What one season misses: Saturday looks like Friday.
    assert np.abs(np.array(daily_only.point) - truth).mean() > 10.0
    assert both["daily"].point == pytest.approx(
        tuple(50 + 30 * np.sin(2 * np.pi * nxt / 24)), abs=3.0
    )


# Each model on a series it answers exactly (or nearly), at 30-second, 5-minute and
# hourly steps: every window is in steps and seasons, so the answer must not depend
# on the step. (step, season) in seconds; 30 s gets a two-hour season to stay small.
STEPS = [(30.0, 7200.0), (300.0, 86400.0), (3600.0, 86400.0)]


def at_step(step: float, season: float, series: np.ndarray) -> AgentForecast:
    settings = ForecastSettings.for_step(step, horizon=4 * step, season=season)
    batch = SeriesBatch(("agent",), 0.0, step, series[None, :])
    return forecast(batch, settings).by_agent()["agent"]


def known_length(step: float, season: float) -> tuple[int, int]:
    """Points of history (enough for every model) and steps per season."""
    settings = ForecastSettings.for_step(step, horizon=4 * step, season=season)
    fit = settings.burn_in + 2 * settings.window
    return max(8 * settings.season, fit + 4 * settings.season), settings.season


@pytest.mark.parametrize(("step", "season"), STEPS)
def test_naive_follows_a_step_change_at_any_step(step: float, season: float) -> None:
    points, _ = known_length(step, season)
    settings = ForecastSettings.for_step(step, horizon=4 * step, season=season)
    # The new level starts inside the last backtest window: only naive has it exactly.
    series = np.where(np.arange(points) < points - settings.window // 2, 3.0, 8.0)
    f = at_step(step, season, series)
    assert f.model is Model.NAIVE
    assert f.point == pytest.approx((8.0,) * 4)


@pytest.mark.parametrize(("step", "season"), STEPS)
def test_holt_extrapolates_a_ramp_at_any_step(step: float, season: float) -> None:
    points, _ = known_length(step, season)
    f = at_step(step, season, np.arange(points, dtype=float))
    # Holt-Winters is Holt plus a profile, which a ramp does not need (both exact).
    assert f.model in (Model.HOLT, Model.HOLT_WINTERS)
    # Damped (phi 0.9): rising, by at most the slope of 1 per step.
    assert np.all(np.diff(f.point) > 0)
    assert points - 1 < f.point[0] <= f.point[-1] <= points + 3


@pytest.mark.parametrize(("step", "season"), STEPS)
def test_a_seasonal_model_repeats_an_exact_season_at_any_step(step: float, season: float) -> None:
    points, per = known_length(step, season)
    shape = np.where(np.arange(per) < per // 2, 10.0, 2.0)  # a square wave
    series = np.resize(shape, points + 4)
    f = at_step(step, season, series[:points])
    assert f.model in (Model.SEASONAL_MEDIAN, Model.SEASONAL_NAIVE)
    assert f.point == pytest.approx(tuple(series[points:]))


@pytest.mark.parametrize(("step", "season"), STEPS)
def test_holt_winters_takes_a_noisy_cycle_at_any_step(step: float, season: float) -> None:
    points, per = known_length(step, season)
    t = np.arange(points + 4)
    truth = 50.0 + 20.0 * np.sin(2 * np.pi * t / per)
    noisy = truth + np.random.default_rng(5).normal(0.0, 2.0, t.size)
    f = at_step(step, season, noisy[:points])
    assert f.model in (Model.HOLT_WINTERS, Model.SEASONAL_MEDIAN)
    assert f.point == pytest.approx(tuple(truth[points:]), abs=3.0)


@pytest.mark.parametrize(("step", "season"), STEPS)
def test_the_seasonal_ratio_scales_the_daily_shape_to_a_new_level_at_any_step(
    step: float, season: float
) -> None:
    # A smooth daily shape whose level doubles inside the last backtest window: the
    # harmonic shape from before, times the new ratio, is exact; an additive profile keeps
    # the old amplitude and naive the last value.
    points, per = known_length(step, season)
    settings = ForecastSettings.for_step(step, horizon=4 * step, season=season)
    t = np.arange(points + 4)
    shape = 20.0 + 8.0 * np.sin(2 * np.pi * t / per) + 3.0 * np.cos(4 * np.pi * t / per)
    truth = np.where(t < points - settings.window // 2, 1.0, 2.0) * shape
    f = at_step(step, season, truth[:points])
    assert f.model is Model.SEASONAL_RATIO
    assert f.point == pytest.approx(tuple(truth[points:]), rel=1e-6)


@pytest.mark.parametrize(("step", "season"), STEPS)
def test_the_median_forecasts_sparse_counts_at_any_step(step: float, season: float) -> None:
    points, _ = known_length(step, season)
    sparse = np.random.default_rng(8).poisson(0.2, points).astype(float)
    f = at_step(step, season, sparse)
    assert f.model in (Model.MEDIAN, Model.SEASONAL_MEDIAN)
    assert f.point == pytest.approx((0.0,) * 4)


# Seasons short enough that the backtest windows (224 steps here) see the end of a
# "week": a choice between two seasons is only as good as what the windows hold.
@pytest.mark.parametrize(("step", "per"), [(30.0, 40), (300.0, 48), (3600.0, 24)])
def test_of_two_seasons_each_agent_gets_its_own_at_any_step(step: float, per: int) -> None:
    season = per * step
    long = 7 * per  # a "week" of seven seasons, the last two of them quiet
    points = 4 * long + 5 * per + per // 2  # half-way into the first quiet season
    t = np.arange(points + 4)
    cycle = 50.0 + 30.0 * np.sin(2 * np.pi * t / per)
    weekly = np.where((t // per) % 7 < 5, 1.0, 0.3) * cycle
    batch = SeriesBatch(("weekly", "daily"), 0.0, step, np.stack([weekly, cycle])[:, :points])
    settings = ForecastSettings.for_step(step, horizon=4 * step, season=season)
    both = forecast_seasons(batch, settings, [per, long]).by_agent()
    assert both["weekly"].params["season_steps"] == long
    assert both["weekly"].point == pytest.approx(tuple(weekly[points:]), abs=3.0)
    assert both["daily"].point == pytest.approx(tuple(cycle[points:]), abs=3.0)
