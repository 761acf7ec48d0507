"""Keep a group's pods inside one NVLink domain, else one rack, else one zone.

For pods of a group (``domain/groups.py``: a LeaderWorkerSet group or the
``scheduler-extender.io/group`` label), the traffic between members (all-to-all
of expert parallelism, all-reduce of tensor parallelism) is only fast inside an
NVLink domain (``nvidia.com/gpu.clique``); across racks it crosses the slowest
links. Once members are placed, a candidate scores by how close it is to them:

    same NVLink domain 1.0 > same rack 0.6 > same zone 0.3 > elsewhere 0,

each weighted by the share of the placed members there, so the group grows
where most of it already is. The first member goes to the NVLink domain (else
rack) with the most free GPUs among the candidates' (the best chance that the
whole group fits there), and inside it to the node with the most free GPUs.
A group that declares its size (``groups.declared_size``) says how many GPUs
it will need in all: its first member goes to the domain with the least room
that still holds the whole group (best fit, keeping the roomier domains whole
for larger groups), else to the one that holds most of it. Pods of no group
get no opinion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.columns import FloatArray, IntArray
from scheduler_extender.domain.groups import (
    NVLINK_LABEL,
    RACK_LABEL,
    ZONE_LABEL,
    declared_size,
    group_of,
)
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral

# What sharing each level with a placed member is worth, tightest first.
CLOSENESS = ((NVLINK_LABEL, 1.0), (RACK_LABEL, 0.6), (ZONE_LABEL, 0.3))


def _domains(snapshot: Snapshot, label: str, rows: IntArray) -> list[str | None]:
    """The value of ``label`` on each row's node (None: no node or no label)."""
    out: list[str | None] = []
    for name in snapshot.columns.names_of(rows):
        state = snapshot.nodes.get(name) if name is not None else None
        out.append(None if state is None else state.node.labels.get(label))
    return out


@dataclass(frozen=True, slots=True)
class GroupTopology:
    name: str = "group_topology"
    audience: Audience = Audience.GROUPS

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        group = group_of(pod)
        if group is None or len(rows) == 0:
            return neutral(rows)
        snapshot = ctx.snapshot
        members = snapshot.groups.get(group, {})
        if members:
            return _near(snapshot, members, rows)
        size = declared_size(pod)
        need = size * pod.requests.get(ctx.gpu_resource) if size else 0
        return _first(snapshot, rows, ctx.gpu_resource, need)


def _near(snapshot: Snapshot, members: Mapping[str, int], rows: IntArray) -> FloatArray:
    total = sum(members.values())
    score = np.zeros(len(rows))
    for label, worth in CLOSENESS:
        placed: dict[str, int] = {}
        for node, count in members.items():
            state = snapshot.nodes.get(node)
            value = None if state is None else state.node.labels.get(label)
            if value is not None:
                placed[value] = placed.get(value, 0) + count
        if not placed:
            continue
        share = np.array(
            [
                placed.get(d, 0) / total if d is not None else 0.0
                for d in _domains(snapshot, label, rows)
            ]
        )
        score = np.maximum(score, worth * share)
    return score


def _first(snapshot: Snapshot, rows: IntArray, gpu: str, need: int) -> FloatArray:
    """Where a group's first member goes; ``need``: the whole group's GPUs (0: unknown)."""
    free = np.maximum(snapshot.columns.free_of(gpu, rows), 0).astype(float)
    node_part = free / max(float(free.max()), 1.0)
    for label in (NVLINK_LABEL, RACK_LABEL):
        domains = _domains(snapshot, label, rows)
        if all(d is None for d in domains):
            continue
        room: dict[str, float] = {}
        # Every node of a domain counts, not only the candidates.
        everywhere = np.arange(snapshot.columns.size)
        all_free = np.maximum(snapshot.columns.free_of(gpu, everywhere), 0)
        for domain, spare in zip(
            _domains(snapshot, label, everywhere), all_free.tolist(), strict=True
        ):
            if domain is not None:
                room[domain] = room.get(domain, 0.0) + spare
        per_row = np.array([room.get(d, 0.0) if d is not None else 0.0 for d in domains])
        if need > 0:
            # Holds the whole group: 0.5..1, the tighter the higher; else below 0.5, by
            # how much of it fits.
            holds = per_row >= need
            fit = np.where(holds, 0.5 + 0.5 * need / np.maximum(per_row, 1.0), 0.5 * per_row / need)
        else:
            fit = per_row / max(float(per_row.max()), 1.0)
        scored: FloatArray = 0.8 * fit + 0.2 * node_part
        return scored
    return node_part
