"""Agent popularity: the forecast the scoring policies read.

The request path only ever reads a ``Popularity`` value that a background
loop produced; producing it (Prometheus queries, model fitting) happens
elsewhere. An empty ``Popularity`` means "no opinion": policies score neutrally.

``GpuCapacity`` says how much of that load one GPU of a node can serve,
relative to the others: an L4 is not an H100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

# The GPU model of a node, as NVIDIA GPU feature discovery labels it
# (e.g. "NVIDIA-H100-80GB-HBM3").
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


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


@dataclass(frozen=True, slots=True)
class GpuCapacity:
    """Relative serving capacity of one GPU, by GPU model (``GPU_PRODUCT_LABEL``).

    A node serves as much as its GPUs times its model's capacity; a model not
    listed (or a node without the label) counts ``default``, 1.0.
    """

    models: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    default: float = 1.0

    def __post_init__(self) -> None:
        bad = {m: c for m, c in self.models.items() if not 0.0 < c < float("inf")}
        if bad or not 0.0 < self.default < float("inf"):
            raise ValueError(f"GPU model capacities must be finite and > 0, not {bad}")

    def of(self, labels: Mapping[str, str]) -> float:
        """Capacity of one GPU of a node with ``labels``."""
        product = labels.get(GPU_PRODUCT_LABEL)
        return self.default if product is None else self.models.get(product, self.default)

    @property
    def uniform(self) -> bool:
        """Every GPU counts the same (nothing configured)."""
        return not self.models or all(c == self.default for c in self.models.values())


UNIFORM_GPUS = GpuCapacity()
