"""Synthetic per-agent request traces, shaped after the Azure Functions 2019 statistics.

No public trace is reachable from a machine that only sees package registries
(see docs in /work/shared/reference/predictive.md, section 3.4), so the
benchmarks generate one, with a fixed seed:

* popularity across agents is Zipf(s) by rank, spanning two orders of
  magnitude, plus a few rarely used agents whose per-minute series is mostly 0;
* every agent follows a daily cycle (two harmonics, phase per "time zone");
* per-minute counts are Poisson, so low-rate agents are noisy;
* bursts: short spells (5-30 min) at 2-5x the normal rate;
* a regime shift: on the last day some agents' popularity changes for good;
* agents appear and vanish during the trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

DAY = 1440  # minutes


@dataclass(frozen=True)
class Traces:
    """Per-minute request rates (req/s) of every agent; NaN while an agent does not exist."""

    agents: tuple[str, ...]
    rates: NDArray[np.float64]  # (agents, minutes) observed rate: Poisson count / 60
    expected: NDArray[np.float64]  # (agents, minutes) the rate the counts were drawn from
    calm: NDArray[np.float64]  # (agents, minutes) the same without the bursts
    step: float = 60.0

    @property
    def minutes(self) -> int:
        return int(self.rates.shape[1])


def zipf_weights(count: int, exponent: float) -> NDArray[np.float64]:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    normalised: NDArray[np.float64] = weights / weights.sum()
    return normalised


def generate(
    *,
    agents: int = 60,
    rare_agents: int = 6,
    days: int = 3,
    total_rate: float = 20.0,
    zipf: float = 1.1,
    seed: int = 7,
) -> Traces:
    """``agents`` Zipf-ranked agents plus ``rare_agents`` near-idle ones, over ``days``."""
    rng = np.random.default_rng(seed)
    minutes = days * DAY
    t = np.arange(minutes)
    count = agents + rare_agents
    base = np.concatenate([total_rate * zipf_weights(agents, zipf), np.full(rare_agents, 0.002)])
    rng.shuffle(base[:agents])  # rank is not the agent's name order

    expected = np.empty((count, minutes))
    bursts = np.ones((count, minutes))
    for a in range(count):
        phase = rng.choice([0.0, 0.25, 0.5, 0.7]) * 2 * np.pi  # a few "time zones"
        amplitude = rng.uniform(0.3, 0.8)
        daily = (
            1.0
            + amplitude * np.sin(2 * np.pi * t / DAY + phase)
            + 0.25 * amplitude * np.sin(4 * np.pi * t / DAY + 2 * phase)
        )
        expected[a] = base[a] * np.clip(daily, 0.05, None)
        for _ in range(rng.poisson(1.5 * days)):  # bursts
            start = int(rng.integers(0, minutes))
            length = int(rng.integers(5, 31))
            bursts[a, start : start + length] *= rng.uniform(2.0, 5.0)
        expected[a] *= bursts[a]

    # The regime shift: on the last day, a fifth of the Zipf agents change popularity.
    shift_at = (days - 1) * DAY + int(rng.integers(2 * 60, 10 * 60))
    for a in rng.choice(agents, size=max(1, agents // 5), replace=False):
        expected[a, shift_at:] *= rng.choice([0.25, 0.5, 2.0, 4.0])

    exists = np.ones((count, minutes), dtype=bool)
    newcomers = rng.choice(agents, size=max(1, agents // 12), replace=False)
    for a in newcomers:  # appear during the history or on the last day
        exists[a, : int(rng.integers(DAY // 2, minutes - 3 * 60))] = False
    leavers = rng.choice(np.setdiff1d(np.arange(agents), newcomers), size=max(1, agents // 12))
    for a in leavers:  # vanish, mostly on the last day
        exists[a, int(rng.integers((days - 1) * DAY - 6 * 60, minutes - 60)) :] = False

    counts = rng.poisson(expected * 60.0)
    rates = np.where(exists, counts / 60.0, np.nan)
    names = tuple(f"agent-{i:03d}" for i in range(count))
    return Traces(
        names, rates, np.where(exists, expected, 0.0), np.where(exists, expected / bursts, 0.0)
    )
