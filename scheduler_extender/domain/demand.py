"""The GPU demand a cluster is likely to see next, learned from the pods it has seen.

Demand-aware packing (``domain/scoring/demand_packing.py``) judges a placement
by what it leaves for the pods that are likely to come. What is likely is read
off the cluster itself: the shapes of the last ``DEFAULT_MEMORY`` GPU pods that
appeared (running, pending or gone since), plus the pods pending now (counted
once more: they are waiting for exactly that room).

A *shape* (``DemandClass``) is what decides where a pod fits: its GPUs, its
cpu and memory (rounded up to a geometric grid, so that a trace of thousands
of distinct requests makes at most a few dozen classes), and its GPU
constraint: the requirements of its nodeSelector and required node affinity
on NVIDIA's node labels (``nvidia.com/gpu.product`` and the other GPU Feature
Discovery labels), and nothing else of them.

``DemandBook`` (a ``shapes.ShapeBook``) is the mutable side, kept by ``ClusterState`` (first sight of
each pod, pending or not); ``Demand`` is the frozen copy a snapshot carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler_extender.domain.objects import Pod, Requirement
from scheduler_extender.domain.resources import CPU, MEMORY
from scheduler_extender.domain.shapes import ShapeBook, ShapeMix

# Node labels of NVIDIA's GPU Feature Discovery (nvidia.com/gpu.product, .memory, .family, ...).
GPU_LABEL_PREFIX = "nvidia.com/"
_GRID = 4  # cpu and memory are rounded up to powers of 2 ** (1 / _GRID)


@dataclass(frozen=True, slots=True)
class GpuConstraint:
    """The part of a pod's node selection that is about GPUs: ANDed selector, ORed terms."""

    selector: tuple[tuple[str, str], ...] = ()
    terms: tuple[tuple[Requirement, ...], ...] = ()  # empty: no affinity on GPU labels

    @property
    def unconstrained(self) -> bool:
        return not self.selector and not self.terms

    def admits(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.selector):
            return False
        return not self.terms or any(all(r.matches(labels) for r in t) for t in self.terms)


ANY_GPU = GpuConstraint()


def gpu_constraint(pod: Pod) -> GpuConstraint:
    """What ``pod`` requires of a node's GPU labels.

    Required node affinity terms are ORed: if one term says nothing about GPU
    labels, the pod may go to a node of any GPU, and the terms constrain nothing.
    """
    selector = tuple(sorted((k, v) for k, v in pod.node_selector.items() if _gpu_key(k)))
    terms: list[tuple[Requirement, ...]] = []
    for term in pod.required_affinity:
        kept = tuple(r for r in term.expressions if _gpu_key(r.key))
        if not kept:
            terms = []
            break
        terms.append(kept)
    return GpuConstraint(selector, tuple(dict.fromkeys(terms)))


def gpu_labels(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A node's labels that GPU constraints read, as a hashable key."""
    return tuple(sorted((k, v) for k, v in labels.items() if _gpu_key(k)))


def _gpu_key(key: str) -> bool:
    return key.startswith(GPU_LABEL_PREFIX)


def _round_up(value: int) -> int:
    """``value`` rounded up to the grid (exact below 16)."""
    if value <= 16:
        return max(value, 0)
    return math.ceil(2 ** (math.ceil(_GRID * math.log2(value) - 1e-9) / _GRID))


@dataclass(frozen=True, slots=True)
class DemandClass:
    """One shape of GPU pod: GPUs, cpu (millicores) and memory (bytes) rounded up, constraint."""

    gpus: int
    cpu: int = 0
    memory: int = 0
    constraint: GpuConstraint = ANY_GPU


def demand_class(pod: Pod, gpu_resource: str) -> DemandClass | None:
    """The shape of ``pod``; None when it asks for no GPU."""
    gpus = pod.requests.get(gpu_resource)
    if gpus <= 0:
        return None
    return DemandClass(
        gpus,
        _round_up(pod.requests.get(CPU)),
        _round_up(pod.requests.get(MEMORY)),
        gpu_constraint(pod),
    )


# The expected mix of GPU pods (whole GPUs, cpu, memory, constraint).
Demand = ShapeMix[DemandClass]  # a type alias: build values with ShapeMix(...)
NO_DEMAND: Demand = ShapeMix()


class DemandBook(ShapeBook[DemandClass]):
    """The recent and pending GPU pods behind a cluster's demand."""

    def beyond_the_cut(
        self, lighter: list[tuple[DemandClass, float]]
    ) -> list[tuple[DemandClass, float]]:
        """The lighter shapes' demand for GPU models, one shape per GPU count and constraint.

        Pods constrained to one or two of many models make many light shapes; dropping
        them would hide the demand for the models they need, and unconstrained pods would
        then fill those models first. They are kept by GPU count and constraint, without
        cpu and memory (which would multiply the shapes again); an unconstrained light
        shape adds little the heavy unconstrained ones do not already price.
        """
        gpus: dict[tuple[int, GpuConstraint], float] = {}
        for shape, weight in lighter:
            if not shape.constraint.unconstrained:
                key = (shape.gpus, shape.constraint)
                gpus[key] = gpus.get(key, 0.0) + weight
        return [(DemandClass(g, constraint=c), w) for (g, c), w in gpus.items()]
