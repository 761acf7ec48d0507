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

``DemandBook`` is the mutable side, kept by ``ClusterState`` (first sight of
each pod, pending or not); ``Demand`` is the frozen copy a snapshot carries.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler_extender.domain.objects import Pod, Requirement
from scheduler_extender.domain.resources import CPU, MEMORY

# Node labels of NVIDIA's GPU Feature Discovery (nvidia.com/gpu.product, .memory, .family, ...).
GPU_LABEL_PREFIX = "nvidia.com/"
DEFAULT_MEMORY = 1000  # GPU pods remembered, by arrival
MAX_CLASSES = 48  # the heaviest shapes kept in a snapshot's demand
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


@dataclass(frozen=True, slots=True)
class Demand:
    """The expected mix of GPU pods: shapes and how many of each (recent + pending)."""

    classes: tuple[DemandClass, ...] = ()
    weights: tuple[float, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.classes)


NO_DEMAND = Demand()


class DemandBook:
    """The recent and pending GPU pods behind a cluster's demand; not thread-safe.

    Shapes are counted by a small integer id (hashing a shape costs more than
    hashing an int, and ``freeze`` runs after every change).
    """

    def __init__(self, memory: int = DEFAULT_MEMORY, max_classes: int = MAX_CLASSES) -> None:
        self._recent: deque[int] = deque()
        self._memory = memory
        self._max_classes = max_classes
        self._ids: dict[DemandClass, int] = {}
        self._shapes: list[DemandClass] = []
        self._counts: Counter[int] = Counter()
        self._pending: dict[str, int] = {}  # uid -> shape id
        self._pending_counts: Counter[int] = Counter()
        self._frozen = NO_DEMAND
        self._dirty = False

    def _id(self, shape: DemandClass) -> int:
        known = self._ids.get(shape)
        if known is None:
            known = self._ids[shape] = len(self._shapes)
            self._shapes.append(shape)
        return known

    def arrived(self, shape: DemandClass) -> None:
        """A GPU pod seen for the first time."""
        key = self._id(shape)
        self._recent.append(key)
        self._counts[key] += 1
        if len(self._recent) > self._memory:
            old = self._recent.popleft()
            self._counts[old] -= 1
            if self._counts[old] <= 0:
                del self._counts[old]
        self._dirty = True

    def set_pending(self, uid: str, shape: DemandClass | None) -> None:
        """Whether the pod ``uid`` waits for a node (``shape``) or not (None)."""
        key = None if shape is None else self._id(shape)
        old = self._pending.get(uid)
        if old == key:
            return
        if old is not None:
            self._pending_counts[old] -= 1
            if self._pending_counts[old] <= 0:
                del self._pending_counts[old]
            del self._pending[uid]
        if key is not None:
            self._pending[uid] = key
            self._pending_counts[key] += 1
        self._dirty = True

    def freeze(self) -> Demand:
        if not self._dirty:
            return self._frozen
        weights = self._counts + self._pending_counts
        shapes = self._shapes
        # The heaviest (in GPUs), listed in a fixed order: while the same shapes stay the
        # heaviest, ``classes`` stays the same and only the weights change.
        heaviest = sorted(weights.items(), key=lambda kw: (-kw[1] * shapes[kw[0]].gpus, kw[0]))
        kept = sorted(heaviest[: self._max_classes])
        classes = tuple(shapes[k] for k, _ in kept)
        if classes == self._frozen.classes:
            classes = self._frozen.classes  # the same object: consumers compare by identity
        self._frozen = Demand(classes, tuple(float(w) for _, w in kept))
        self._dirty = False
        return self._frozen
