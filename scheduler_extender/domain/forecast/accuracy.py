"""Forecast accuracy measures: MASE, pinball loss and quantile coverage.

MASE (Hyndman & Koehler, 2006) divides the mean absolute error by the
in-sample mean absolute error of the seasonal naive forecast, so it compares
agents whose rates differ by orders of magnitude: below 1 beats seasonal
naive. With less than a season of history the lag-1 (naive) error is the
scale. A series that never changed has no scale and no MASE.
"""

from __future__ import annotations

import numpy as np

from scheduler_extender.domain.forecast.series import FloatArray, IntArray


def pinball(actual: FloatArray, bound: FloatArray, quantile: float) -> FloatArray:
    """Pinball (quantile) loss of ``bound`` as the ``quantile`` of ``actual``, elementwise."""
    diff = actual - bound
    loss: FloatArray = np.maximum(quantile * diff, (quantile - 1.0) * diff)
    return loss


def mase_scale(
    values: FloatArray, first: IntArray, *, end: int, season: int, min_count: int
) -> FloatArray:
    """Per row, the in-sample seasonal naive MAE over the observed points before ``end``.

    Rows with fewer than ``min_count`` seasonal differences observed fall back
    to the lag-1 MAE; NaN when a row has fewer than two observed points.
    """
    rows = values.shape[0]
    scale = np.full(rows, np.nan)
    start = np.where(first < 0, end, first)
    for lag, needs_season in ((season, True), (1, False)):
        if end <= lag:
            continue
        diffs = np.abs(values[:, lag:end] - values[:, : end - lag])  # diffs[:, i] is at t = i+lag
        t = np.arange(lag, end)
        use = t[None, :] - lag >= start[:, None]
        counts = use.sum(axis=1)
        means = np.where(use, diffs, 0.0).sum(axis=1) / np.maximum(counts, 1)
        missing = np.isnan(scale) & (counts > 0)
        if needs_season:
            missing &= counts >= min_count
        scale[missing] = means[missing]
    return scale
