"""Demand-aware packing: place a GPU pod where it costs the likely next pods the least room.

The idea of fragmentation gradient descent (FGD; Weng et al., "Beware of
Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient
Descent", USENIX ATC'23), for whole GPUs and GPU models. The cluster's demand
(``Snapshot.demand``, ``domain/demand.py``) is a mix of pod shapes *m*: GPUs,
cpu, memory and the GPU models (labels) they accept, each with a weight
(recent and pending pods of that shape).

On a node, the GPUs *usable* by shape *m* are the GPUs of the copies of *m*
the node could still take (limited by free GPUs, cpu and memory; none when
the node's GPU labels do not admit *m*). A free GPU that *m* cannot use is
fragmented for *m*: FGD's fragmentation is the expectation of that over the
mix, and placing a pod changes it, on that node only, by the usable GPUs it
destroys. Not all shapes are equally short of room, though: each shape's
loss is priced by its demand over the room the whole cluster has for it,

    price(m) = weight(m) x gpus(m) / usable GPUs for m on all nodes
    cost(node) = sum over m of price(m) x (usable(m) before - usable(m) after)

so a pod goes where it destroys the least room that is in demand. Agents
add what their forecast says is coming: each agent with a forecast is
expected to hold the share of the replicas its share of the forecast load
calls for (the autoscaler keeps load per replica level), and the replicas it
lacks for that count as pending pods of its latest replica's shape. No
demand is assumed beyond the pods seen: an assumed share of whole-node pods
(tried, to keep the rarest large nodes whole) made the scarcity price of the
last whole nodes outweigh real demand for scarce GPU models, and cost 6
points of allocation on the model-constrained trace (BENCHMARKS.md).
Pods without GPUs (in the extender's profile) are placed the same way: their
cpu and memory go where they cost the GPU shapes the least, e.g. on nodes
whose GPUs are all taken. Without any
pricing this is plain FGD: a pod lands on a node already useless to the
largest shapes (bin-packing by shape, not by fill). With it, a pod that may
use any model stays off a small, scarce model (an empty 2-GPU T4 node) that
pods constrained to that model need, and takes an 8-GPU node's GPU only when
8-GPU pods are not short of room there.

The per-shape usable room of every node and the prices are computed once per
snapshot (one vectorised pass over the nodes); a request only recomputes the
room left on its candidates. Among nodes of equal cost the fullest wins (the
fill after placement, as ``gpu_binpack``), which is also the whole score
when the cluster has seen no GPU pod yet.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.columns import Columns, FloatArray, IntArray
from scheduler_extender.domain.demand import Demand
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.resources import CPU, MEMORY
from scheduler_extender.domain.scoring.gpu_binpack import fill_after
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral

# Share of the score that goes to filling the fullest node among equally costly ones.
FILL_SHARE = 0.1
_MANY = np.int64(2**40)  # copies when a shape asks for none of a resource


@dataclass(frozen=True, slots=True)
class _Shapes:
    """The demand as arrays, one entry per shape (K shapes)."""

    gpus: IntArray  # K
    cpu: IntArray  # K
    memory: IntArray  # K

    def usable(self, free_gpu: IntArray, free_cpu: IntArray, free_memory: IntArray) -> IntArray:
        """GPUs of the copies of each shape that fit: K x len(free_gpu)."""
        copies = np.maximum(free_gpu, 0)[None, :] // self.gpus[:, None]
        cpu = self.cpu[:, None]
        copies = np.minimum(
            copies, np.where(cpu > 0, np.maximum(free_cpu, 0)[None, :] // np.maximum(cpu, 1), _MANY)
        )
        memory = self.memory[:, None]
        copies = np.minimum(
            copies,
            np.where(
                memory > 0, np.maximum(free_memory, 0)[None, :] // np.maximum(memory, 1), _MANY
            ),
        )
        usable: IntArray = copies * self.gpus[:, None]
        return usable


@dataclass(frozen=True, slots=True)
class _Memo:
    """What the policy derives from one snapshot's columns and demand."""

    columns: Columns
    demand: Demand
    popularity: Popularity
    gpu: str
    allocatable: tuple[IntArray, IntArray, IntArray]  # gpu, cpu, memory per row
    free: tuple[IntArray, IntArray, IntArray]  # gpu, cpu, memory per row
    shapes: _Shapes
    admitted: np.ndarray  # K x rows, bool: the node's GPU labels admit the shape
    usable: IntArray  # K x rows, before any placement
    room: IntArray  # K: usable GPUs over all rows
    price: FloatArray  # K

    def holds(self, columns: Columns, demand: Demand, popularity: Popularity, gpu: str) -> bool:
        return (
            self.columns is columns
            and self.demand is demand
            and self.popularity is popularity
            and self.gpu == gpu
        )

    def same_shapes(
        self,
        columns: Columns,
        demand: Demand,
        gpu: str,
        allocatable: tuple[IntArray, IntArray, IntArray],
    ) -> bool:
        """Whether ``usable`` holds for these shapes and nodes, but for changed free amounts."""
        return (
            self.gpu == gpu
            and self.demand.classes is demand.classes
            and self.columns.label_codes is columns.label_codes
            and self.columns.rows is columns.rows
            and all(
                np.array_equal(a, b) for a, b in zip(self.allocatable, allocatable, strict=True)
            )
        )


def forecast_weights(snapshot: Snapshot, popularity: Popularity) -> FloatArray:
    """The demand's weights plus the replicas the forecast says each agent still lacks.

    With the forecast, agent *a* should hold ``rate(a) / sum of rates`` of the
    replicas of the agents forecast; what it lacks of that is expected to come, as
    pods of its latest replica's shape (an agent whose shape is not among the
    demand's classes adds nothing).
    """
    demand = snapshot.demand
    weights = np.array(demand.weights, dtype=float)
    rates = {
        agent: rate
        for agent, rate in popularity.rates.items()
        if rate > 0 and agent in snapshot.agent_shapes
    }
    total_rate = sum(rates.values())
    replicas = sum(snapshot.agent_replicas.get(agent, 0) for agent in rates)
    if total_rate <= 0 or replicas <= 0:
        return weights
    index = {shape: i for i, shape in enumerate(demand.classes)}
    for agent, rate in rates.items():
        at = index.get(snapshot.agent_shapes[agent])
        lacking = rate / total_rate * replicas - snapshot.agent_replicas.get(agent, 0)
        if at is not None and lacking > 0:
            weights[at] += lacking
    return weights


class DemandAwarePacking:
    name = "demand_packing"
    audience = Audience.UNLABELLED

    def __init__(self) -> None:
        self._memo: _Memo | None = None
        self._lock = threading.Lock()

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        gpus = pod.requests.get(ctx.gpu_resource)
        if len(rows) == 0 or (gpus <= 0 and not ctx.snapshot.demand):
            return neutral(rows)
        columns = ctx.snapshot.columns
        fill = fill_after(columns, rows, gpus, ctx.gpu_resource)
        if not ctx.snapshot.demand:
            return fill
        memo = self._memo_of(ctx.snapshot, ctx.popularity, ctx.gpu_resource)
        after = memo.shapes.usable(
            columns.free_of(ctx.gpu_resource, rows) - gpus,
            columns.free_of(CPU, rows) - pod.requests.get(CPU),
            columns.free_of(MEMORY, rows) - pod.requests.get(MEMORY),
        )
        lost = np.where(memo.admitted[:, rows], memo.usable[:, rows] - after, 0)
        cost: FloatArray = memo.price @ lost
        low, high = float(cost.min()), float(cost.max())
        if high - low <= 1e-9 * max(abs(high), 1.0):
            return fill
        scored: FloatArray = (1.0 - FILL_SHARE) * (high - cost) / (high - low) + FILL_SHARE * fill
        return scored

    def _memo_of(self, snapshot: Snapshot, popularity: Popularity, gpu: str) -> _Memo:
        columns, demand = snapshot.columns, snapshot.demand
        with self._lock:
            memo = self._memo
            if memo is not None and memo.holds(columns, demand, popularity, gpu):
                return memo
            everywhere = np.arange(columns.size)
            allocatable = (
                columns.allocatable_of(gpu, everywhere),
                columns.allocatable_of(CPU, everywhere),
                columns.allocatable_of(MEMORY, everywhere),
            )
            free = (
                columns.free_of(gpu, everywhere),
                columns.free_of(CPU, everywhere),
                columns.free_of(MEMORY, everywhere),
            )
            if memo is not None and memo.same_shapes(columns, demand, gpu, allocatable):
                # The usual step (a bind, a pod seen): only a few rows' free amounts changed.
                shapes, admitted = memo.shapes, memo.admitted
                changed = np.flatnonzero(
                    (free[0] != memo.free[0])
                    | (free[1] != memo.free[1])
                    | (free[2] != memo.free[2])
                )
                usable = memo.usable.copy()
                room = memo.room.copy()
                if len(changed):
                    fresh = np.where(
                        admitted[:, changed],
                        shapes.usable(free[0][changed], free[1][changed], free[2][changed]),
                        0,
                    )
                    room += (fresh - usable[:, changed]).sum(axis=1)
                    usable[:, changed] = fresh
            else:
                classes = demand.classes
                shapes = _Shapes(
                    np.array([c.gpus for c in classes], dtype=np.int64),
                    np.array([c.cpu for c in classes], dtype=np.int64),
                    np.array([c.memory for c in classes], dtype=np.int64),
                )
                # K x (label sets + 1): whether each shape admits each set of GPU labels; the
                # last column is for rows without a node (code -1).
                sets = columns.label_sets
                table = np.array(
                    [[c.constraint.admits(labels) for labels in sets] + [False] for c in classes],
                    dtype=np.bool_,
                ).reshape(len(classes), len(sets) + 1)
                codes = columns.label_codes
                admitted = table[:, codes] if len(codes) == columns.size else table[:, [-1]]
                usable = np.where(admitted, shapes.usable(*free), 0)
                room = usable.sum(axis=1)
            wanted = forecast_weights(snapshot, popularity) * shapes.gpus
            price = wanted / np.maximum(room.astype(float), shapes.gpus.astype(float))
            self._memo = memo = _Memo(
                columns,
                demand,
                popularity,
                gpu,
                allocatable,
                free,
                shapes,
                admitted,
                usable,
                room,
                price,
            )
            return memo
