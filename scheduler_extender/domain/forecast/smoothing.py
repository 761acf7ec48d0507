"""Exponential smoothing (EWMA and damped Holt) over a grid of parameters, vectorised.

The recursion is the error-correction form of ETS(A,Ad,N) (Hyndman et al.,
*Forecasting with Exponential Smoothing*, 2008)::

    f_t = l_{t-1} + phi*b_{t-1}         one-step forecast
    e_t = y_t - f_t
    l_t = f_t + alpha*e_t
    b_t = phi*b_{t-1} + beta*e_t
    y_hat(t+h | t) = l_t + (phi + ... + phi^h) * b_t

With ``beta = 0`` the trend stays 0 and this is simple exponential smoothing
(EWMA). The time loop is unavoidable, so every row (agent) and every
parameter pair advances together as one (rows, combos) array: the cost of a
refresh is ~10 numpy operations per time step, shared by all agents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.forecast.series import FloatArray

# The trend is always damped: an undamped trend extrapolated 15 minutes ahead
# from noisy per-minute rates overshoots after every burst. 0.9 is the
# conventional value (Gardner & McKenzie); it is fixed rather than fitted
# because one-step errors barely constrain it.
PHI = 0.9
ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.7)
BETAS = (0.0, 0.01, 0.05)
# Levels start from the mean of the first points of the window; the burn-in
# before the backtest window absorbs the rest of the start-up error.
_LEVEL_START_POINTS = 10


@dataclass(frozen=True, slots=True)
class Grid:
    """Parameter pairs tried for every row; ``beta == 0`` pairs are plain EWMA."""

    alpha: FloatArray  # (combos,)
    beta: FloatArray  # (combos,)
    phi: float = PHI

    @staticmethod
    def default() -> Grid:
        pairs = [(a, b) for a in ALPHAS for b in BETAS if b <= a]
        alpha, beta = zip(*pairs, strict=True)
        return Grid(np.array(alpha), np.array(beta))

    @property
    def size(self) -> int:
        return int(self.alpha.size)

    def damped_sums(self, horizon: int) -> FloatArray:
        """phi + phi^2 + ... + phi^h for h = 1..horizon."""
        return np.cumsum(self.phi ** np.arange(1, horizon + 1))


@dataclass(frozen=True, slots=True)
class SmoothingRun:
    """States at every origin from ``record_from`` on, and one-step errors per window."""

    levels: FloatArray  # (origins, rows, combos): l_t after seeing y_t
    trends: FloatArray  # (origins, rows, combos)
    window_errors: tuple[FloatArray, ...]  # per window: sum of |e_t|, (rows, combos)


def smooth(
    series: FloatArray,
    grid: Grid,
    *,
    record_from: int,
    windows: tuple[tuple[int, int], ...],
) -> SmoothingRun:
    """Run every parameter pair over every row of ``series`` (rows, points).

    States are recorded for t in [record_from, points); one-step absolute
    errors are summed separately over each [start, stop) of ``windows``.
    """
    rows, points = series.shape
    k = grid.size
    alpha, beta, phi = grid.alpha, grid.beta, grid.phi
    start = series[:, : min(_LEVEL_START_POINTS, points)].mean(axis=1)
    level = np.repeat(start[:, None], k, axis=1)
    damped = np.zeros((rows, k))  # phi * b_{t-1}
    levels = np.empty((points - record_from, rows, k))
    trends = np.empty_like(levels)
    sums = [np.zeros((rows, k)) for _ in windows]
    owner = np.full(points, -1)
    for i, (lo, hi) in enumerate(windows):
        owner[lo:hi] = i
    column = series.T[:, :, None]  # (points, rows, 1): y_t broadcast over the combos
    for t in range(points):
        forecast = level + damped
        error = column[t] - forecast
        level = forecast + alpha * error
        trend = damped + beta * error
        damped = phi * trend
        if owner[t] >= 0:
            sums[owner[t]] += np.abs(error)
        if t >= record_from:
            levels[t - record_from] = level
            trends[t - record_from] = trend
    return SmoothingRun(levels, trends, tuple(sums))
