"""The daily (or other) seasonal profile that Holt-Winters starts from.

Classical decomposition: every whole season before ``end`` is centred on its
own mean, the seasons are averaged slot by slot, and the average is smoothed
with a circular moving average. Averaging several seasons cancels noise;
smoothing across neighbouring slots matters even more here, because with
per-minute data and two days of history each slot has only one or two noisy
observations, and a burst seen yesterday must not be forecast again today.
"""

from __future__ import annotations

import numpy as np

from scheduler_extender.domain.forecast.series import FloatArray, IntArray


def circular_smooth(profile: FloatArray, width: int) -> FloatArray:
    """Moving average of odd ``width`` along the last axis, wrapping around."""
    if width <= 1:
        return profile
    half = width // 2
    padded = np.concatenate([profile[:, -half:], profile, profile[:, :half]], axis=1)
    sums = np.cumsum(padded, axis=1)
    sums = np.concatenate([np.zeros((profile.shape[0], 1)), sums], axis=1)
    smoothed: FloatArray = (sums[:, width:] - sums[:, :-width]) / width
    return smoothed


def seasonal_profile(
    values: FloatArray,
    first: IntArray,
    *,
    end: int,
    season: int,
    max_seasons: int,
    smoothing: int,
) -> FloatArray:
    """Per row, the mean-zero seasonal profile of the whole seasons before ``end``.

    Slot ``i`` of the result belongs to the points ``t`` with
    ``(t - end) % season == i``. Rows with no whole observed season before
    ``end`` get a zero profile.
    """
    rows = values.shape[0]
    whole = np.clip((end - np.maximum(first, 0)) // season, 0, max_seasons)
    whole[first < 0] = 0
    total = np.zeros((rows, season))
    for j in range(1, int(whole.max(initial=0)) + 1):
        block = values[:, end - j * season : end - (j - 1) * season]
        use = (whole >= j)[:, None]
        total += np.where(use, block - block.mean(axis=1, keepdims=True), 0.0)
    profile = total / np.maximum(whole, 1)[:, None]
    return circular_smooth(profile, smoothing)


def harmonic_profile(
    values: FloatArray,
    first: IntArray,
    *,
    end: int,
    season: int,
    max_seasons: int,
    harmonics: int,
) -> FloatArray:
    """Per row, the level plus ``harmonics`` sine waves of the season, fitted before ``end``.

    Least squares over the observed points of the last ``max_seasons`` seasons
    before ``end`` (rows with less than one season get zeros). Slot ``i`` of the
    result belongs to the points ``t`` with ``(t - end) % season == i``, as in
    ``seasonal_profile``. A few harmonics are the smooth daily shape of traffic
    (dynamic harmonic regression): two seasons of 48 half-hourly points, bursts
    included, pin down five coefficients far better than 48 slot means.
    """
    rows = values.shape[0]
    start = max(0, end - max_seasons * season)
    times = np.arange(start, end)
    design = _harmonics(times - end, season, harmonics)  # (points, terms)
    observed = (times[None, :] >= np.maximum(first, 0)[:, None]) & (first >= 0)[:, None]
    enough = observed.sum(axis=1) >= season
    weights = (observed & enough[:, None]).astype(float)
    past = np.nan_to_num(values[:, start:end])
    normal = np.einsum("tp,rt,tq->rpq", design, weights, design)
    normal += np.eye(design.shape[1])[None] * 1e-9  # rows without data: a zero fit
    rhs = np.einsum("tp,rt->rp", design, weights * past)
    coefficients = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]
    profile: FloatArray = coefficients @ _harmonics(np.arange(season), season, harmonics).T
    profile[~enough] = 0.0
    return profile.reshape(rows, season)


def _harmonics(times: IntArray, season: int, harmonics: int) -> FloatArray:
    angle = 2 * np.pi * times[:, None] * np.arange(1, harmonics + 1)[None, :] / season
    design: FloatArray = np.concatenate(
        [np.ones((len(times), 1)), np.sin(angle), np.cos(angle)], axis=1
    )
    return design
