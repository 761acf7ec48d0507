"""Resource vectors in integer base units.

cpu is in millicores, memory and ephemeral storage in bytes, everything else
(``nvidia.com/gpu``, ``pods``, other extended resources) in whole units.
Integers keep the accounting exact; the adapters parse Kubernetes quantities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True, slots=True)
class Resources:
    """An immutable mapping of resource name to an integer amount."""

    amounts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @staticmethod
    def of(values: Mapping[str, int] | None = None, /, **kwargs: int) -> Resources:
        merged = dict(values or {})
        merged.update(kwargs)
        return Resources(MappingProxyType({k: v for k, v in merged.items() if v}))

    def get(self, name: str) -> int:
        return self.amounts.get(name, 0)

    def __add__(self, other: Resources) -> Resources:
        out = dict(self.amounts)
        for name, value in other.amounts.items():
            out[name] = out.get(name, 0) + value
        return Resources.of(out)

    def names(self) -> Iterable[str]:
        return self.amounts.keys()


EMPTY = Resources.of()
