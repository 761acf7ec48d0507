"""Agent popularity: the forecast the scoring policies read.

The request path only ever reads a ``Popularity`` value that a background
loop produced; producing it (Prometheus queries, model fitting) happens
elsewhere. An empty ``Popularity`` means "no opinion": policies score neutrally.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Popularity:
    """Expected request rate per agent (requests/s) over the placement horizon."""

    rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "none"

    def rate(self, agent: str | None) -> float | None:
        if agent is None:
            return None
        return self.rates.get(agent)

    @property
    def known(self) -> bool:
        return bool(self.rates)


NEUTRAL = Popularity()


class PopularitySource(Protocol):
    """Anything that can hand out the latest popularity without blocking."""

    def current(self) -> Popularity: ...


@dataclass(frozen=True, slots=True)
class StaticPopularity:
    """A fixed popularity, from configuration or tests."""

    popularity: Popularity = NEUTRAL

    def current(self) -> Popularity:
        return self.popularity
