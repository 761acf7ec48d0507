"""GPU bin-packing: fill partly used GPU nodes first, keep whole nodes free.

A pod's GPUs are best placed where they leave the fewest GPUs stranded: the
score is the fraction of the node's GPUs in use once the pod is placed. An
exact fit scores 1; an empty node scores lowest, so large pods still find one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scheduler_extender.domain.columns import Columns, FloatArray, IntArray
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.policy import Audience, ScoringContext, neutral


def fill_after(columns: Columns, rows: IntArray, gpus: int, resource: str) -> FloatArray:
    """Fraction of each node's GPUs in use after placing ``gpus`` more."""
    total = columns.allocatable_of(resource, rows)
    used = total - columns.free_of(resource, rows) + gpus
    fill = np.divide(used, total, out=np.zeros(len(rows)), where=total > 0)
    clipped: FloatArray = np.clip(fill, 0.0, 1.0)
    return clipped


@dataclass(frozen=True, slots=True)
class GpuBinPacking:
    name: str = "gpu_binpack"
    audience: Audience = Audience.ALL

    def score(self, pod: Pod, rows: IntArray, ctx: ScoringContext) -> FloatArray:
        gpus = pod.requests.get(ctx.gpu_resource)
        if gpus <= 0:
            return neutral(rows)
        return fill_after(ctx.snapshot.columns, rows, gpus, ctx.gpu_resource)
