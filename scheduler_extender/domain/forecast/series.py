"""Per-agent request-rate series on one regular time grid, and their gaps.

Prometheus answers a range query with samples on the grid ``start + i*step``
but leaves out the points where a series had no value. The forecasting models
want dense arrays, so the gaps are filled here, by what each gap most likely
means:

* before an agent's first sample the agent did not exist yet: no requests (0);
* inside the observed span a missing point is a scrape hiccup: interpolate
  linearly between its neighbours (as Crane's preprocessing does);
* after the last sample, a short gap is ingestion lag (hold the last value),
  a long one means the agent is gone (0 from then on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SeriesBatch:
    """Samples of several agents on the grid ``start + i*step``, NaN where missing."""

    agents: tuple[str, ...]
    start: float  # unix seconds of column 0
    step: float  # seconds between columns
    values: FloatArray  # shape (agents, points)

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[0] != len(self.agents):
            raise ValueError("values must have one row per agent")
        if not self.step > 0:
            raise ValueError("step must be positive")

    @property
    def points(self) -> int:
        return int(self.values.shape[1])

    @property
    def end(self) -> float:
        """Timestamp of the last column."""
        return self.start + (self.points - 1) * self.step


@dataclass(frozen=True, slots=True)
class FilledBatch:
    """A batch with its gaps filled, and where each agent's observations start and end."""

    agents: tuple[str, ...]
    values: FloatArray  # (agents, points), finite everywhere
    first: IntArray  # index of the first observed point, -1 if none
    last: IntArray  # index of the last observed point, -1 if none

    @property
    def points(self) -> int:
        return int(self.values.shape[1])

    def observed(self, row: int) -> int:
        """Points from the first observation to the end of the grid."""
        first = int(self.first[row])
        return 0 if first < 0 else self.points - first

    def gone(self, row: int, after: int) -> bool:
        """No observation at all, or none in the last ``after`` points."""
        last = int(self.last[row])
        return last < 0 or self.points - 1 - last >= after


def fill_gaps(batch: SeriesBatch, *, gone_after: int) -> FilledBatch:
    """Fill missing points as the module docstring explains.

    ``gone_after``: a trailing gap of at least this many points means the
    agent is gone; a shorter one is held at the last observed value.
    """
    n = batch.points
    values = np.zeros_like(batch.values)
    first = np.full(len(batch.agents), -1, dtype=np.int64)
    last = np.full(len(batch.agents), -1, dtype=np.int64)
    grid = np.arange(n)
    for row in range(len(batch.agents)):
        raw = batch.values[row]
        seen = np.flatnonzero(np.isfinite(raw))
        if seen.size == 0:
            continue
        lo, hi = int(seen[0]), int(seen[-1])
        first[row], last[row] = lo, hi
        values[row, lo : hi + 1] = np.interp(grid[lo : hi + 1], seen, raw[seen])
        if n - 1 - hi < gone_after:
            values[row, hi + 1 :] = raw[hi]
    return FilledBatch(batch.agents, values, first, last)
