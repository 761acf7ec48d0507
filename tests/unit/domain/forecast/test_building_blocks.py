"""Gap filling, the smoothing recursion, the seasonal profile and the accuracy measures."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler_extender.domain.forecast.accuracy import mase_scale, pinball
from scheduler_extender.domain.forecast.seasonal import (
    circular_smooth,
    harmonic_profile,
    seasonal_profile,
)
from scheduler_extender.domain.forecast.series import SeriesBatch, fill_gaps
from scheduler_extender.domain.forecast.smoothing import Grid, smooth

NAN = np.nan


def batch(*rows: list[float]) -> SeriesBatch:
    return SeriesBatch(
        tuple(f"a{i}" for i in range(len(rows))), 0.0, 60.0, np.array(rows, dtype=float)
    )


def test_gaps_before_inside_and_after_the_observations() -> None:
    filled = fill_gaps(
        batch(
            [NAN, NAN, 2.0, NAN, 4.0, 5.0, NAN],  # new agent, a hiccup, short lag
            [1.0, 2.0, NAN, NAN, NAN, NAN, NAN],  # gone: 5 points missing at the end
            [NAN] * 7,  # never seen
        ),
        gone_after=3,
    )
    assert filled.values[0].tolist() == [0.0, 0.0, 2.0, 3.0, 4.0, 5.0, 5.0]
    assert filled.values[1].tolist() == [1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert filled.values[2].tolist() == [0.0] * 7
    assert filled.first.tolist() == [2, 0, -1]
    assert [filled.observed(r) for r in range(3)] == [5, 7, 0]
    assert [filled.gone(r, 3) for r in range(3)] == [False, True, True]


def reference_holt(y: np.ndarray, alpha: float, beta: float, phi: float) -> tuple[float, float]:
    """The textbook scalar recursion the vectorised one must match."""
    level, trend = float(y[:10].mean()), 0.0
    for value in y:
        forecast = level + phi * trend
        error = value - forecast
        level, trend = forecast + alpha * error, phi * trend + beta * error
    return level, trend


def test_vectorised_smoothing_matches_the_scalar_recursion() -> None:
    rng = np.random.default_rng(1)
    series = np.cumsum(rng.normal(0.1, 1.0, size=(3, 200)), axis=1)
    grid = Grid.default()
    run = smooth(series, grid, record_from=150, windows=((0, 100), (100, 200)))
    assert run.levels.shape == (50, 3, grid.size)
    for row in range(3):
        for k in range(grid.size):
            level, trend = reference_holt(series[row], grid.alpha[k], grid.beta[k], grid.phi)
            assert run.levels[-1, row, k] == pytest.approx(level)
            assert run.trends[-1, row, k] == pytest.approx(trend)


def test_smoothing_on_a_constant_has_no_error_and_ewma_has_no_trend() -> None:
    run = smooth(np.full((1, 50), 7.0), Grid.default(), record_from=0, windows=((0, 50),))
    assert np.allclose(run.levels, 7.0)
    assert np.allclose(run.window_errors[0], 0.0)
    grid = Grid.default()
    ramp = smooth(np.arange(100.0)[None], grid, record_from=0, windows=((0, 100),))
    assert np.all(ramp.trends[:, :, grid.beta == 0] == 0.0)


def test_the_damped_trend_sums() -> None:
    assert Grid.default().damped_sums(3) == pytest.approx([0.9, 0.9 + 0.81, 0.9 + 0.81 + 0.729])


def test_the_profile_recovers_a_daily_sine_from_noisy_days() -> None:
    season = 288
    t = np.arange(3 * season)
    truth = 3.0 * np.sin(2 * np.pi * t / season)
    noisy = 10.0 + truth + np.random.default_rng(2).normal(0, 1.0, t.size)
    profile = seasonal_profile(
        noisy[None], np.array([0]), end=3 * season, season=season, max_seasons=7, smoothing=9
    )
    assert profile.shape == (1, season)
    assert np.abs(profile[0] - truth[:season]).max() < 0.6  # noise sd 1, averaged over 27
    assert abs(profile.mean()) < 1e-9


def test_the_harmonic_profile_fits_two_harmonics_through_bursts_and_gaps() -> None:
    season = 48
    t = np.arange(4 * season)
    truth = 10.0 + 3.0 * np.sin(2 * np.pi * t / season + 0.3) + np.cos(4 * np.pi * t / season)
    seen = truth + np.random.default_rng(4).normal(0, 0.5, t.size)
    rows = np.vstack([seen, np.full(t.size, np.nan), np.where(t < 3 * season + 10, np.nan, seen)])
    first = np.array([0, -1, 3 * season + 10])
    profile = harmonic_profile(rows, first, end=t.size, season=season, max_seasons=7, harmonics=2)
    # Slot i is the time t with (t - end) % season == i: here t = i (end is whole seasons).
    assert np.abs(profile[0] - truth[:season]).max() < 0.4
    assert not profile[1].any()  # never observed
    assert not profile[2].any()  # less than a season observed


def test_the_profile_uses_only_whole_observed_seasons() -> None:
    values = np.vstack([np.tile([0.0, 10.0], 4), np.tile([0.0, 10.0], 4)])
    first = np.array([0, 5])  # the second row has no whole season before the end
    profile = seasonal_profile(values, first, end=8, season=4, max_seasons=7, smoothing=1)
    assert profile[0].tolist() == [-5.0, 5.0, -5.0, 5.0]
    assert profile[1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_circular_smoothing_wraps_and_keeps_the_mean() -> None:
    profile = np.array([[3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    smoothed = circular_smooth(profile, 3)
    assert smoothed[0].tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    assert smoothed.sum() == pytest.approx(3.0)


def test_pinball_loss_weighs_under_and_over_prediction_by_the_quantile() -> None:
    actual = np.array([10.0, 10.0, 10.0])
    loss = pinball(actual, np.array([8.0, 10.0, 14.0]), 0.9)
    assert loss.tolist() == pytest.approx([1.8, 0.0, 0.4])


def test_mase_scale_is_seasonal_with_enough_history_else_lag_one() -> None:
    season = 4
    seasonal = np.tile([1.0, 5.0, 1.0, 5.0], 5) + np.repeat([0.0, 1.0], 10)  # shift at t=10
    flat = np.zeros(20)
    short = np.array([0.0] * 14 + [1.0, 3.0, 1.0, 3.0, 1.0, 3.0])  # observed from t=14
    values = np.vstack([seasonal, flat, short])
    scale = mase_scale(values, np.array([0, 0, 14]), end=20, season=season, min_count=8)
    # |y_t - y_{t-4}| is 1 for t in 10..13 and 0 elsewhere in 4..19: 4 of 16.
    assert scale[0] == pytest.approx(4 / 16)
    assert scale[1] == 0.0  # never changed: no MASE can be computed from it
    assert scale[2] == pytest.approx(2.0)  # too short for seasonal differences: lag 1
