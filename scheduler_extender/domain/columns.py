"""Columnar (numpy) views of per-node accounting, for scoring thousands of nodes fast.

kube-scheduler sends up to thousands of candidate nodes per call and waits for
the answer on its serial scheduling path, so filter and prioritize work on
arrays indexed by a node's *row* rather than on per-node Python objects. The
row of a node is stable while the node exists; rows of deleted nodes are reused.

``ColumnBuilder`` is updated incrementally (only for nodes that changed) by
``ClusterState``; ``Columns`` is the frozen copy a snapshot carries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def _frozen(array: IntArray) -> IntArray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True)
class AgentRows:
    """Where one agent's replicas run: node rows and replica counts."""

    rows: IntArray
    counts: IntArray

    def per_row(self, size: int) -> IntArray:
        """Replicas on every row of a ``size``-row table."""
        per_row = np.zeros(size, dtype=np.int64)
        per_row[self.rows] = self.counts
        return per_row


@dataclass(frozen=True, slots=True)
class Columns:
    rows: Mapping[str, int]  # node name -> row
    size: int  # number of rows (including free ones)
    allocatable: Mapping[str, IntArray]  # resource -> per-row amount
    free: Mapping[str, IntArray]  # resource -> per-row allocatable - requested
    agents: Mapping[str, AgentRows]
    # Per row, the index in ``label_sets`` of the node's GPU labels (-1: no node); a fleet has
    # a handful of distinct sets (one per GPU model), so rules on them run once per set.
    label_codes: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    label_sets: tuple[Mapping[str, str], ...] = ()
    names: tuple[str | None, ...] = ()  # per row, its node's name (None: a free row)

    def names_of(self, rows: IntArray) -> list[str | None]:
        """The node name of each of ``rows`` (None: no node there)."""
        names = self.names
        return [names[r] if 0 <= r < len(names) else None for r in rows.tolist()]

    def rows_of(self, names: Iterable[str]) -> IntArray:
        """Rows of ``names``; -1 for names of unknown nodes."""
        return np.fromiter(map(self.rows.get, names, repeat(-1)), dtype=np.int64)

    def allocatable_of(self, resource: str, rows: IntArray) -> IntArray:
        column = self.allocatable.get(resource)
        return column[rows] if column is not None else np.zeros(len(rows), dtype=np.int64)

    def free_of(self, resource: str, rows: IntArray) -> IntArray:
        column = self.free.get(resource)
        return column[rows] if column is not None else np.zeros(len(rows), dtype=np.int64)

    def agent_counts(self, agent: str, rows: IntArray) -> IntArray:
        """Replicas of ``agent`` on each of ``rows``."""
        placed = self.agents.get(agent)
        if placed is None:
            return np.zeros(len(rows), dtype=np.int64)
        return placed.per_row(self.size)[rows]


class ColumnBuilder:
    """The mutable columns behind ``ClusterState``; not thread-safe."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._spare: list[int] = []
        self._capacity = 0
        self._allocatable: dict[str, IntArray] = {}
        self._free: dict[str, IntArray] = {}
        self._agents: dict[str, AgentRows] = {}
        # A copy of _rows made when a node comes or goes, shared by the frozen
        # columns as a plain dict typed read-only: a mappingproxy's ``get`` costs
        # 2-3x a dict's, and ``rows_of`` makes one per candidate node.
        self._rows_view: Mapping[str, int] = {}
        self._names: tuple[str | None, ...] = ()
        self._names_of: Mapping[str, int] | None = None  # the row index _names was built from
        self._codes = np.zeros(0, dtype=np.int64)
        self._label_index: dict[tuple[tuple[str, str], ...], int] = {}
        self._label_sets: list[Mapping[str, str]] = []
        self._codes_view: IntArray = _frozen(self._codes.copy())
        self._codes_dirty = False

    def set_node(
        self,
        name: str,
        allocatable: Mapping[str, int],
        free: Mapping[str, int],
        lookup: Callable[[str], tuple[Mapping[str, int], Mapping[str, int]]],
        labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Write one node's row; ``lookup`` backfills a resource seen for the first time.

        ``labels``: the node's GPU labels (``demand.gpu_labels``).
        """
        row = self._rows.get(name)
        if row is None:
            row = self._spare.pop() if self._spare else self._grow()
            self._rows[name] = row
            self._rows_view = dict(self._rows)
        code = self._label_index.get(labels)
        if code is None:
            code = self._label_index[labels] = len(self._label_sets)
            self._label_sets.append(MappingProxyType(dict(labels)))
        if self._codes[row] != code:
            self._codes[row] = code
            self._codes_dirty = True
        for resource in allocatable.keys() | free.keys():
            if resource not in self._allocatable:
                self._add_resource(resource, lookup)
        for resource, column in self._allocatable.items():
            column[row] = allocatable.get(resource, 0)
            self._free[resource][row] = free.get(resource, 0)

    def remove_node(self, name: str) -> None:
        row = self._rows.pop(name, None)
        if row is None:
            return
        for resource, column in self._allocatable.items():
            column[row] = 0
            self._free[resource][row] = 0
        self._codes[row] = -1
        self._codes_dirty = True
        self._spare.append(row)
        self._rows_view = dict(self._rows)

    def set_agent(self, agent: str, nodes: Mapping[str, int]) -> None:
        # Rebuilt for every bind of a hot agent, whose replicas may run on most
        # nodes: arrays from the mapping's views, no per-node Python tuple.
        size = len(nodes)
        rows = np.fromiter(map(self._rows.get, nodes, repeat(-1)), dtype=np.int64, count=size)
        counts = np.fromiter(nodes.values(), dtype=np.int64, count=size)
        keep = (rows >= 0) & (counts > 0)
        if not keep.all():
            rows, counts = rows[keep], counts[keep]
        if not len(rows):
            self._agents.pop(agent, None)
            return
        self._agents[agent] = AgentRows(_frozen(rows), _frozen(counts))

    def freeze(self) -> Columns:
        if self._codes_dirty:  # label codes rarely change: share the array until they do
            self._codes_view = _frozen(self._codes.copy())
            self._codes_dirty = False
        return Columns(
            rows=self._rows_view,
            size=self._capacity,
            allocatable=MappingProxyType(
                {r: _frozen(c.copy()) for r, c in self._allocatable.items()}
            ),
            free=MappingProxyType({r: _frozen(c.copy()) for r, c in self._free.items()}),
            agents=MappingProxyType(dict(self._agents)),
            label_codes=self._codes_view,
            label_sets=tuple(self._label_sets),
            names=self._names_view(),
        )

    def _names_view(self) -> tuple[str | None, ...]:
        # Rebuilt only when a node came or went (the row index is then a new dict).
        if self._names_of is not self._rows_view:
            names: list[str | None] = [None] * self._capacity
            for name, row in self._rows_view.items():
                names[row] = name
            self._names, self._names_of = tuple(names), self._rows_view
        return self._names

    def _grow(self) -> int:
        old = self._capacity
        self._capacity = max(64, old * 2)
        for columns in (self._allocatable, self._free):
            for resource, column in columns.items():
                grown = np.zeros(self._capacity, dtype=np.int64)
                grown[:old] = column
                columns[resource] = grown
        codes = np.full(self._capacity, -1, dtype=np.int64)
        codes[:old] = self._codes
        self._codes = codes
        self._codes_dirty = True
        self._spare.extend(range(self._capacity - 1, old, -1))
        return old

    def _add_resource(
        self, resource: str, lookup: Callable[[str], tuple[Mapping[str, int], Mapping[str, int]]]
    ) -> None:
        allocatable = np.zeros(self._capacity, dtype=np.int64)
        free = np.zeros(self._capacity, dtype=np.int64)
        for name, row in self._rows.items():
            node_allocatable, node_free = lookup(name)
            allocatable[row] = node_allocatable.get(resource, 0)
            free[row] = node_free.get(resource, 0)
        self._allocatable[resource] = allocatable
        self._free[resource] = free
