"""Per-agent forecasts: model selection, point forecast, upper quantile and backtest.

Every refresh works on the last ``burn_in + 2*window`` points of each series
(the *fit window*); everything older only feeds the seasonal profile::

    ... profile history ... | burn-in | window 1 | window 2 |  -> horizon
                            S0                             now

Candidates: the median of the last season and of the same phase in past
seasons (for sparse counts, whose MAE-optimal forecast is their median),
naive, seasonal naive, EWMA, damped Holt, and additive Holt-Winters (damped
Holt on the series minus the seasonal profile, i.e. ETS(A,Ad,A) with its seasonal states initialised by classical decomposition
and held: within a fit window shorter than a season no seasonal state is
read twice, so a fitted seasonal smoothing rate would never act), and the
seasonal ratio (the season's shape as a level plus a few harmonics, fitted
before the fit window, times the median ratio of the last points to it).
Holt-Winters needs two seasons of history, seasonal naive and the median of
the last season one, the seasonal median three.

The procedure is honest by construction: what is scored never saw the data it
is scored on.

* Smoothing parameters are chosen per agent by one-step MAE, the model by
  h-step MAE, both on window 1; quantile offsets are the (coverage-calibrated,
  see ``calibrated_quantile``) quantiles of that model's h-step residuals on
  window 1. Window 2 then scores this
  choice: MASE, pinball loss and coverage of the upper bound (the backtest).
* The live forecast makes the same choices on both windows (parameters by
  one-step MAE over both, the model by h-step MAE over both, the quantile
  offsets from both windows' residuals), and forecasts from the last point.
  Twice the origins halve the noise of the choice, which matters most where
  a window holds few origins (coarse steps, short histories); the backtest
  therefore scores a procedure with half the data, a conservative estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

import numpy as np

from scheduler_extender.domain.forecast.accuracy import mase_scale, pinball
from scheduler_extender.domain.forecast.seasonal import harmonic_profile, seasonal_profile
from scheduler_extender.domain.forecast.series import (
    BoolArray,
    FilledBatch,
    FloatArray,
    IntArray,
    SeriesBatch,
    fill_gaps,
)
from scheduler_extender.domain.forecast.smoothing import Grid, smooth


class Model(StrEnum):
    NAIVE = "naive"
    SEASONAL_NAIVE = "seasonal_naive"
    EWMA = "ewma"
    HOLT = "holt"
    HOLT_WINTERS = "holt_winters"
    SEASONAL_RATIO = "seasonal_ratio"  # harmonic daily shape x the recent level
    MEDIAN = "median"  # of the last season
    SEASONAL_MEDIAN = "seasonal_median"  # of the same phase in the last seasons
    NONE = "none"  # a gone agent: nothing to forecast


class Status(StrEnum):
    OK = "ok"  # observed over the whole fit window
    NEW = "new"  # shorter history: a shorter backtest, or none at all
    GONE = "gone"  # no sample recently (or ever): forecast 0


# In order of preference where backtest errors tie (argmin takes the first): on a
# sparse series many windows are all zeros, and a median holds where the last
# value, a spike, would be carried forward.
CANDIDATES = (
    Model.MEDIAN,
    Model.SEASONAL_MEDIAN,
    Model.NAIVE,
    Model.SEASONAL_NAIVE,
    Model.EWMA,
    Model.HOLT,
    Model.HOLT_WINTERS,
    Model.SEASONAL_RATIO,
)
_SMOOTHED = (Model.EWMA, Model.HOLT, Model.HOLT_WINTERS)
# Fewest backtest origins per horizon step worth scoring and taking quantiles from.
MIN_ORIGINS = 10
GONE_AFTER_SECONDS = 600.0
# Bounds of each backtest window, in steps (see ForecastSettings.for_step).
MIN_WINDOW, MAX_WINDOW = 96, 360
# Fewest past seasons a seasonal median is taken over.
MIN_MEDIAN_SEASONS = 3
# The median of the last season is recomputed at this many origins per season at
# most (held in between: it moves slowly, and each is a partition of a season).
MEDIAN_UPDATES_PER_SEASON = 32
# The seasonal ratio model: harmonics of the season in its shape, and the level as the
# median ratio of the last points to that shape (a burst in one of them moves nothing).
RATIO_HARMONICS = 2
RATIO_POINTS = 3
# The shape is held at this share of its mean at least, so a near-zero trough does
# not turn one request into a huge level.
RATIO_FLOOR = 0.05
# A history too short to backtest gets an EWMA with this fixed rate: quick to
# follow a new agent's ramp-up, still averaging out single-point noise.
SHORT_HISTORY_ALPHA = 0.5


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    """How to forecast, in grid steps (see ``for_step`` for durations)."""

    horizon: int
    season: int
    quantile: float = 0.9
    window: int = 360  # each of the two backtest windows
    burn_in: int = 120
    gone_after: int = 10  # trailing missing points that mean "agent gone"
    max_seasons: int = 7  # seasons averaged into the profile
    profile_smoothing: int = 31  # odd width of the profile's moving average
    chunk: int = 64  # agents fitted together (bounds memory, keeps arrays cache-sized)

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError("horizon must be at least one step")
        if self.season < 2:
            raise ValueError("season must be at least two steps")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError("quantile must be between 0 and 1")
        if self.window < 1 or self.burn_in < 0 or self.gone_after < 1 or self.chunk < 1:
            raise ValueError("window, gone_after and chunk must be positive, burn_in not negative")

    @staticmethod
    def for_step(
        step: float, *, horizon: float, season: float, quantile: float = 0.9
    ) -> ForecastSettings:
        """Settings for data sampled every ``step`` seconds, ``horizon`` and ``season`` in seconds.

        Every window is a number of steps or a share of the season, never a
        wall-clock duration, so that a 15 s and a 1 h step both get a backtest
        with enough origins: each backtest window is a quarter season, between
        ``MIN_WINDOW`` and ``MAX_WINDOW`` steps (cost grows with it), the
        burn-in a third of that, the profile smoothed over 1/48 of the season.
        Only "gone" is a duration (``GONE_AFTER_SECONDS``).
        """
        season_steps = max(2, round(season / step))
        window = min(max(season_steps // 4, MIN_WINDOW), MAX_WINDOW)
        return ForecastSettings(
            horizon=max(1, math.ceil(horizon / step - 1e-9)),
            season=season_steps,
            quantile=quantile,
            window=window,
            burn_in=window // 3,
            # An agent whose series is missing for GONE_AFTER_SECONDS (at least two
            # points) is gone: a lifetime, not a model window, so a duration.
            gone_after=max(2, math.ceil(GONE_AFTER_SECONDS / step - 1e-9)),
            profile_smoothing=_profile_smoothing(season_steps),
        )


def _profile_smoothing(season: int) -> int:
    """Odd width, 1/48 of the season (30 minutes of a day)."""
    return (season // 48) | 1


@dataclass(frozen=True, slots=True)
class Backtest:
    """How the forecasting procedure did on the most recent window it could be scored on."""

    mase: float | None  # None when the series never changed (no scale)
    pinball_loss: float  # of the upper bound, in the series' unit
    coverage: float  # share of actual values at or below the upper bound
    mae: float
    scale: float | None  # the MASE denominator (seasonal or lag-1 naive MAE)
    origins: int  # forecast origins scored


@dataclass(frozen=True, slots=True)
class AgentForecast:
    agent: str
    status: Status
    model: Model
    point: tuple[float, ...]  # per horizon step
    upper: tuple[float, ...]  # the quantile, per horizon step, never below ``point``
    history: int  # observed points
    params: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    backtest: Backtest | None = None

    @property
    def peak(self) -> float:
        """The highest point forecast over the horizon."""
        return max(self.point, default=0.0)


@dataclass(frozen=True, slots=True)
class Forecasts:
    """Forecasts of every agent in a batch, for the steps after ``end``."""

    agents: tuple[AgentForecast, ...]
    start: float  # timestamp of the first grid point of the input
    end: float  # timestamp of the last one
    step: float
    settings: ForecastSettings

    @property
    def points(self) -> int:
        return round((self.end - self.start) / self.step) + 1

    def timestamps(self) -> list[float]:
        return [self.end + h * self.step for h in range(1, self.settings.horizon + 1)]

    def __iter__(self) -> Iterator[AgentForecast]:
        return iter(self.agents)

    def by_agent(self) -> Mapping[str, AgentForecast]:
        return MappingProxyType({f.agent: f for f in self.agents})


def forecast(batch: SeriesBatch, settings: ForecastSettings) -> Forecasts:
    """Forecast every agent of ``batch`` ``settings.horizon`` steps past its end."""
    filled = fill_gaps(batch, gone_after=settings.gone_after)
    results: dict[int, AgentForecast] = {}
    full = _Geometry.fit(filled.points, settings)
    whole_window: list[int] = []
    for row, agent in enumerate(filled.agents):
        observed = filled.observed(row)
        if filled.gone(row, settings.gone_after):
            results[row] = _gone(agent, observed, settings.horizon)
        elif full is not None and observed >= full.length:
            whole_window.append(row)
        else:
            own = _Geometry.fit(observed, settings)
            if own is None:
                results[row] = _short_history(filled, row, settings)
            else:
                results.update(_fit_group(filled, [row], own, settings, Status.NEW))
    if full is not None:
        for i in range(0, len(whole_window), settings.chunk):
            chunk = whole_window[i : i + settings.chunk]
            results.update(_fit_group(filled, chunk, full, settings, Status.OK))
    return Forecasts(
        tuple(results[row] for row in range(len(filled.agents))),
        batch.start,
        batch.end,
        batch.step,
        settings,
    )


def forecast_seasons(
    batch: SeriesBatch, settings: ForecastSettings, seasons: Sequence[int]
) -> Forecasts:
    """Forecast with each of ``seasons`` (steps) and keep, per agent, the best backtest.

    Everything but the season is ``settings``', so every agent's backtests are
    scored on the same windows and compare fairly; a season the history is too
    short for leaves only its non-seasonal models, which the other seasons
    offer too. The result's settings are those of the first season.
    """
    runs = [
        forecast(batch, replace(settings, season=s, profile_smoothing=_profile_smoothing(s)))
        for s in seasons
    ]

    def error(f: AgentForecast) -> float:
        return f.backtest.mae if f.backtest is not None else math.inf

    best = tuple(min(choices, key=error) for choices in zip(*(r.agents for r in runs), strict=True))
    return Forecasts(best, batch.start, batch.end, batch.step, runs[0].settings)


@dataclass(frozen=True, slots=True)
class _Geometry:
    burn_in: int
    window: int

    @property
    def length(self) -> int:
        return self.burn_in + 2 * self.window

    @staticmethod
    def fit(points: int, settings: ForecastSettings) -> _Geometry | None:
        """The largest fit window (up to the configured one) within ``points``.

        Shrunk first so that a season of history stays before it for the
        seasonal profile, as long as the windows keep enough origins.
        """
        for room in (points - settings.season, points):
            share = settings.burn_in / (settings.burn_in + 2 * settings.window)
            burn_in = min(settings.burn_in, int(room * share))
            window = min(settings.window, (room - burn_in) // 2)
            if window >= settings.horizon + MIN_ORIGINS:
                return _Geometry(burn_in, window)
        return None


def _gone(agent: str, observed: int, horizon: int) -> AgentForecast:
    zeros = (0.0,) * horizon
    return AgentForecast(agent, Status.GONE, Model.NONE, zeros, zeros, observed)


def _short_history(filled: FilledBatch, row: int, settings: ForecastSettings) -> AgentForecast:
    """Too little history to backtest: EWMA level, upper bound = recent maximum."""
    seen = filled.values[row, int(filled.first[row]) :]
    level = float(seen[0])
    for value in seen[1:]:
        level += SHORT_HISTORY_ALPHA * (float(value) - level)
    level = max(level, 0.0)
    recent = float(seen[-2 * settings.horizon :].max())
    return AgentForecast(
        agent=filled.agents[row],
        status=Status.NEW,
        model=Model.EWMA,
        point=(level,) * settings.horizon,
        upper=(max(level, recent),) * settings.horizon,
        history=int(seen.size),
        params=MappingProxyType({"alpha": SHORT_HISTORY_ALPHA}),
    )


@dataclass(frozen=True, slots=True)
class _Candidates:
    """h-step forecasts of every candidate model at a range of origins."""

    values: FloatArray  # (candidates, origins, horizon, agents), clipped at 0
    combos: Mapping[Model, IntArray]  # chosen parameter pair per agent, smoothed models


def _fit_group(
    filled: FilledBatch,
    rows: Sequence[int],
    geometry: _Geometry,
    settings: ForecastSettings,
    status: Status,
) -> dict[int, AgentForecast]:
    """Forecast ``rows`` that share ``geometry`` (see the module docstring)."""
    values = filled.values[rows]
    first = filled.first[rows]
    agents, n = values.shape
    horizon, season, window = settings.horizon, settings.season, geometry.window
    s0 = n - geometry.length  # first point of the fit window
    o0 = s0 + geometry.burn_in  # first origin (start of window 1)
    w2 = o0 + window  # start of window 2

    eligible = np.ones((len(CANDIDATES), agents), dtype=bool)
    eligible[CANDIDATES.index(Model.SEASONAL_NAIVE)] = (first <= o0 + 1 - season) & (
        o0 + 1 - season >= 0
    )
    holt_winters = (n - first >= 2 * season) & (s0 - first >= season)
    eligible[CANDIDATES.index(Model.HOLT_WINTERS)] = holt_winters
    eligible[CANDIDATES.index(Model.MEDIAN)] = (first <= o0 + 1 - season) & (o0 + 1 >= season)
    eligible[CANDIDATES.index(Model.SEASONAL_MEDIAN)] = (
        (first <= o0 + 1 - MIN_MEDIAN_SEASONS * season)
        & (o0 + 1 >= MIN_MEDIAN_SEASONS * season)
        & (horizon <= season)
    )

    shape = harmonic_profile(
        values,
        first,
        end=s0,
        season=season,
        max_seasons=settings.max_seasons,
        harmonics=RATIO_HARMONICS,
    )
    mean_shape = shape.mean(axis=1)
    shape = np.maximum(shape, RATIO_FLOOR * np.maximum(mean_shape, 0.0)[:, None])
    eligible[CANDIDATES.index(Model.SEASONAL_RATIO)] = (
        (first >= 0) & (s0 - first >= season) & (mean_shape > 0) & (o0 + 1 >= RATIO_POINTS)
    )

    if holt_winters.any():
        profile = seasonal_profile(
            values,
            first,
            end=s0,
            season=season,
            max_seasons=settings.max_seasons,
            smoothing=settings.profile_smoothing,
        )
        profile[~holt_winters] = 0.0
    else:
        profile = np.zeros((agents, season))

    def seasonal(times: IntArray) -> FloatArray:
        """Profile values at absolute ``times`` (any shape), per agent on the last axis."""
        phase = (times - s0) % season
        picked: FloatArray = profile[np.arange(agents), phase]
        return picked

    span = np.arange(s0, n)
    raw = values[:, s0:]
    deseasoned = raw - seasonal(span[:, None]).T
    grid = Grid.default()
    run = smooth(
        np.concatenate([raw, deseasoned]),
        grid,
        record_from=geometry.burn_in,
        windows=(
            (geometry.burn_in, geometry.burn_in + window),
            (geometry.burn_in + window, geometry.length),
        ),
    )
    families = {
        Model.EWMA: (0, np.flatnonzero(grid.beta == 0)),
        Model.HOLT: (0, np.flatnonzero(grid.beta > 0)),
        Model.HOLT_WINTERS: (agents, np.arange(grid.size)),
    }
    damping = grid.damped_sums(horizon)
    steps = np.arange(1, horizon + 1)
    columns = np.arange(agents)

    def candidates(
        errors: FloatArray, origins: IntArray, same_origins: _Candidates | None = None
    ) -> _Candidates:
        """Forecasts from absolute ``origins``, parameters chosen by ``errors``.

        ``same_origins``: candidates from the same origins, whose models without
        parameters (naive, seasonal naive, the medians) are copied, not recomputed.
        """
        targets = origins[:, None] + steps[None, :]  # (origins, horizon)
        if same_origins is not None:
            out = same_origins.values.copy()
        else:
            out = np.empty((len(CANDIDATES), origins.size, horizon, agents))
            out[CANDIDATES.index(Model.NAIVE)] = values[:, origins].T[:, None, :]
            lagged = np.maximum(targets - season, 0)
            out[CANDIDATES.index(Model.SEASONAL_NAIVE)] = values[:, lagged].transpose(1, 2, 0)
            out[CANDIDATES.index(Model.MEDIAN)] = _trailing_median(values, origins, season)[
                :, None, :
            ]
            out[CANDIDATES.index(Model.SEASONAL_MEDIAN)] = _seasonal_median(
                values, first, targets, season, settings.max_seasons
            )
            out[CANDIDATES.index(Model.SEASONAL_RATIO)] = _seasonal_ratio(
                values, shape, origins, targets, s0
            )
        combos: dict[Model, IntArray] = {}
        recorded = origins - o0
        for model, (offset, ks) in families.items():
            best = ks[np.argmin(errors[offset : offset + agents][:, ks], axis=1)]
            combos[model] = best
            at = (recorded[:, None], (offset + columns)[None, :], best[None, :])
            level = run.levels[at]  # (origins, agents)
            trend = run.trends[at]
            fc = level[:, None, :] + damping[None, :, None] * trend[:, None, :]
            if model is Model.HOLT_WINTERS:
                fc = fc + seasonal(targets[:, :, None])
            out[CANDIDATES.index(model)] = fc
        np.maximum(out, 0.0, out=out)
        return _Candidates(out, combos)

    def actual(origins: IntArray, stop: int) -> tuple[FloatArray, BoolArray]:
        """Actual values at origin+h and whether each is known before ``stop``."""
        targets = origins[:, None] + steps[None, :]
        known = targets < stop
        return values[:, np.minimum(targets, n - 1)].transpose(1, 2, 0), known

    def choose(cands: _Candidates, truth: FloatArray, known: BoolArray) -> IntArray:
        mae = np.zeros((len(CANDIDATES), agents))
        # The origins whose h-step target is known are a prefix, for every h.
        for h, usable in enumerate(known.sum(axis=0)):
            mae += np.abs(truth[None, :usable, h] - cands.values[:, :usable, h]).sum(axis=1)
        mae[~eligible] = np.inf
        chosen: IntArray = np.argmin(mae, axis=0)
        return chosen

    def offsets(
        cands: _Candidates, chosen: IntArray, truth: FloatArray, known: BoolArray
    ) -> FloatArray:
        residuals = truth - cands.values[chosen, :, :, columns].transpose(1, 2, 0)
        quantiles = np.empty((horizon, agents))
        for h, usable in enumerate(known.sum(axis=0)):
            quantiles[h] = calibrated_quantile(residuals[:usable, h], settings.quantile)
        return quantiles

    # Window 1 chooses; window 2 scores the choice.
    origins_1 = np.arange(o0, w2)
    origins_2 = np.arange(w2, n)
    first_choice = candidates(run.window_errors[0], np.arange(o0, n))
    truth_1, known_1 = actual(origins_1, w2)
    cands_1 = _Candidates(first_choice.values[:, :window], first_choice.combos)
    chosen_1 = choose(cands_1, truth_1, known_1)
    offsets_1 = offsets(cands_1, chosen_1, truth_1, known_1)
    truth_2, known_2 = actual(origins_2, n)
    scored = first_choice.values[chosen_1, window:, :, columns].transpose(1, 2, 0)
    scored_upper = np.maximum(scored + offsets_1[None], scored)
    scale = mase_scale(values, first, end=w2, season=season, min_count=window)
    weight = known_2[:, :, None]
    count = int(known_2.sum())
    mae = (np.abs(truth_2 - scored) * weight).sum(axis=(0, 1)) / count
    loss = (pinball(truth_2, scored_upper, settings.quantile) * weight).sum(axis=(0, 1)) / count
    covered = ((truth_2 <= scored_upper + 1e-12) * weight).sum(axis=(0, 1)) / count

    # The live forecast: the same choices, made on both windows.
    both = np.arange(o0, n)
    second_choice = candidates(run.window_errors[0] + run.window_errors[1], both, first_choice)
    truth_b, known_b = actual(both, n)
    chosen_2 = choose(second_choice, truth_b, known_b)
    offsets_2 = offsets(second_choice, chosen_2, truth_b, known_b)
    live = second_choice.values[chosen_2, -1, :, columns]  # (agents, horizon)
    live_upper = np.maximum(live + offsets_2.T, live)

    results: dict[int, AgentForecast] = {}
    for i, row in enumerate(rows):
        model = CANDIDATES[int(chosen_2[i])]
        has_scale = bool(np.isfinite(scale[i]) and scale[i] > 0)
        results[row] = AgentForecast(
            agent=filled.agents[row],
            status=status,
            model=model,
            point=tuple(float(v) for v in live[i]),
            upper=tuple(float(v) for v in live_upper[i]),
            history=filled.observed(row),
            params=_params(model, grid, second_choice.combos, i, season),
            backtest=Backtest(
                mase=float(mae[i] / scale[i]) if has_scale else None,
                pinball_loss=float(loss[i]),
                coverage=float(covered[i]),
                mae=float(mae[i]),
                scale=float(scale[i]) if np.isfinite(scale[i]) else None,
                origins=int(known_2.any(axis=1).sum()),
            ),
        )
    return results


def calibrated_quantile(samples: FloatArray, q: float) -> FloatArray:
    """Per column, the sample whose share of samples at or below it is closest to ``q``.

    For continuous samples this is the empirical ``q`` quantile. Counts are
    discrete: with 85% zeros and 97% at most one, the 0.9 quantile is 1, a
    bound that covers 97%; 0 covers 85%, closer to 0.9. Taking the closest
    share keeps the coverage pooled over agents near ``q`` rather than always
    above it.
    """
    ordered = np.sort(samples, axis=0)
    n = ordered.shape[0]
    # Share at or below each sorted sample: the end of its run of ties, over n.
    ends = np.r_[ordered[1:] != ordered[:-1], np.ones((1, ordered.shape[1]), dtype=bool)]
    position = np.where(ends, np.arange(n)[:, None], n)
    share = (np.minimum.accumulate(position[::-1], axis=0)[::-1] + 1) / n
    best = np.argmin(np.abs(share - q), axis=0)
    picked: FloatArray = ordered[best, np.arange(ordered.shape[1])]
    return picked


def _seasonal_ratio(
    values: FloatArray, shape: FloatArray, origins: IntArray, targets: IntArray, s0: int
) -> FloatArray:
    """Per origin and target, the shape at the target times the median of the last
    ``RATIO_POINTS`` ratios of value to shape up to the origin: (origins, horizon, agents).

    ``shape``: per agent, its harmonic profile, slot ``(t - s0) % season`` for time ``t``.
    """
    season = shape.shape[1]
    rows = np.arange(shape.shape[0])[:, None, None]
    seen = origins[:, None] - np.arange(RATIO_POINTS)[None, :]  # (origins, points)
    under = shape[rows, (seen - s0) % season]
    past = np.nan_to_num(values[:, np.maximum(seen, 0)])
    ratios = np.divide(past, under, out=np.zeros_like(past), where=under > 0)
    level = np.median(ratios, axis=2)  # (agents, origins)
    ahead = shape[rows, (targets - s0) % season]  # (agents, origins, horizon)
    picked: FloatArray = (level[:, :, None] * ahead).transpose(1, 2, 0)
    return picked


def _trailing_median(values: FloatArray, origins: IntArray, season: int) -> FloatArray:
    """Per origin, the median of the season of points up to it: (origins, agents).

    Counts of a sparse series (a few requests per step) have their MAE-optimal
    forecast at the median, often 0, which no smoothed mean reaches.
    """
    stride = max(1, season // MEDIAN_UPDATES_PER_SEASON)
    # Origins are consecutive: each is served by the latest update at or before it.
    served = origins - (origins - origins[0]) % stride
    updates = np.unique(served)
    medians = np.empty((updates.size, values.shape[0]))
    for i, s in enumerate(updates):
        medians[i] = np.median(values[:, max(0, s - season + 1) : s + 1], axis=1)
    picked: FloatArray = medians[np.searchsorted(updates, served)]
    return picked


def _seasonal_median(
    values: FloatArray, first: IntArray, targets: IntArray, season: int, seasons: int
) -> FloatArray:
    """Per target, the median of the same phase in the last ``seasons`` seasons observed.

    ``targets``: (origins, horizon) absolute times, at most one season past their
    origin, so every point read precedes the origin. Returns (origins, horizon, agents).
    """
    lo = int(targets.min())
    times = np.arange(lo, int(targets.max()) + 1)
    lags = times[:, None] - season * np.arange(1, seasons + 1)[None, :]  # (times, seasons)
    past = values[:, np.maximum(lags, 0)]  # (agents, times, seasons)
    observed = lags[None, :, :] >= np.maximum(first, 0)[:, None, None]
    # A median over the observed seasons only: sorted, NaN (unobserved) go last.
    ordered = np.sort(np.where(observed, past, np.nan), axis=2)
    count = np.maximum(observed.sum(axis=2, keepdims=True), 1)
    low = np.take_along_axis(ordered, (count - 1) // 2, axis=2)
    high = np.take_along_axis(ordered, count // 2, axis=2)
    # No season observed: NaN, made 0 (such an agent is not eligible for this model).
    medians = np.nan_to_num(((low + high) / 2)[:, :, 0])  # (agents, times)
    picked: FloatArray = medians[:, targets - lo].transpose(1, 2, 0)
    return picked


def _params(
    model: Model, grid: Grid, combos: Mapping[Model, IntArray], agent: int, season: int
) -> Mapping[str, float]:
    params: dict[str, float] = {}
    if model in _SMOOTHED:
        k = int(combos[model][agent])
        params["alpha"] = float(grid.alpha[k])
        if model is not Model.EWMA:
            params["beta"] = float(grid.beta[k])
            params["phi"] = grid.phi
    if model in (
        Model.SEASONAL_NAIVE,
        Model.HOLT_WINTERS,
        Model.SEASONAL_MEDIAN,
        Model.MEDIAN,
        Model.SEASONAL_RATIO,
    ):
        params["season_steps"] = float(season)
    return MappingProxyType(params)
