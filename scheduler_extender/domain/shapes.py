"""A learned mix of shapes: the recent and pending ones, by how often they were seen.

``ShapeBook`` is the mutable side (first sight of each shape, and which are
pending now); ``ShapeMix`` the frozen copy snapshots carry. The GPU pods' shapes
(``demand.py``) and DRA device requests' shapes (``devices.py``) are learned
by the same book.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

DEFAULT_MEMORY = 1000  # shapes remembered, by arrival
MAX_CLASSES = 48  # the heaviest shapes kept in a frozen mix


class Shape(Protocol):
    """What a book of shapes needs of one: hashable, and how many GPUs it takes (its heft)."""

    def __hash__(self) -> int: ...

    @property
    def gpus(self) -> float: ...


S = TypeVar("S", bound=Shape)


@dataclass(frozen=True, slots=True)
class ShapeMix(Generic[S]):
    """An expected mix of shapes and how many of each (recent + pending)."""

    classes: tuple[S, ...] = ()
    weights: tuple[float, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.classes)


class ShapeBook(Generic[S]):
    """The recent and pending shapes behind a demand; not thread-safe.

    Shapes are counted by a small integer id (hashing a shape costs more than
    hashing an int, and ``freeze`` runs after every change). The same book
    learns the GPU pods' shapes (``DemandBook``) and the DRA device requests'
    (``domain/devices.py``).
    """

    def __init__(self, memory: int = DEFAULT_MEMORY, max_classes: int = MAX_CLASSES) -> None:
        self._recent: deque[int] = deque()
        self._memory = memory
        self._max_classes = max_classes
        self._ids: dict[S, int] = {}
        self._shapes: list[S] = []
        self._counts: Counter[int] = Counter()
        self._pending: dict[str, int] = {}  # uid -> shape id
        self._pending_counts: Counter[int] = Counter()
        self._frozen: ShapeMix[S] = ShapeMix()
        self._dirty = False

    def _id(self, shape: S) -> int:
        known = self._ids.get(shape)
        if known is None:
            known = self._ids[shape] = len(self._shapes)
            self._shapes.append(shape)
        return known

    def arrived(self, shape: S) -> None:
        """A GPU pod (a device request) seen for the first time."""
        key = self._id(shape)
        self._recent.append(key)
        self._counts[key] += 1
        if len(self._recent) > self._memory:
            old = self._recent.popleft()
            self._counts[old] -= 1
            if self._counts[old] <= 0:
                del self._counts[old]
        self._dirty = True

    def set_pending(self, uid: str, shape: S | None) -> None:
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

    def freeze(self) -> ShapeMix[S]:
        if not self._dirty:
            return self._frozen
        weights = self._counts + self._pending_counts
        shapes = self._shapes
        # The heaviest (in GPUs), listed in a fixed order: while the same shapes stay the
        # heaviest, ``classes`` stays the same and only the weights change.
        heaviest = sorted(weights.items(), key=lambda kw: (-kw[1] * shapes[kw[0]].gpus, kw[0]))
        kept = [(shapes[k], float(w)) for k, w in sorted(heaviest[: self._max_classes])]
        lighter = sorted(heaviest[self._max_classes :])  # by id: a stable order
        kept += self.beyond_the_cut([(shapes[k], float(w)) for k, w in lighter])
        classes = tuple(shape for shape, _ in kept)
        if classes == self._frozen.classes:
            classes = self._frozen.classes  # the same object: consumers compare by identity
        self._frozen = ShapeMix(classes, tuple(w for _, w in kept))
        self._dirty = False
        return self._frozen

    def beyond_the_cut(self, lighter: list[tuple[S, float]]) -> list[tuple[S, float]]:
        """What the mix keeps of the shapes past the ``max_classes`` heaviest: nothing here."""
        return []
