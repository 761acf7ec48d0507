"""GPU bin-packing: fill partly used GPU nodes first, keep whole nodes free.

A pod's GPUs are best placed where they leave the fewest GPUs stranded: the
score is the fraction of the node's GPUs in use once the pod is placed. An
exact fit scores 1; an empty node scores lowest, so large pods still find one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler_extender.domain.cluster import NodeState
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.scoring.policy import ScoringContext, neutral


def fill_after(state: NodeState, gpus: int, resource: str) -> float:
    total = state.allocatable(resource)
    if total <= 0:
        return 0.0
    used = total - state.free(resource) + gpus
    return min(max(used / total, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class GpuBinPacking:
    name: str = "gpu_binpack"

    def score(self, pod: Pod, nodes: Sequence[NodeState], ctx: ScoringContext) -> list[float]:
        gpus = pod.requests.get(ctx.gpu_resource)
        if gpus <= 0:
            return neutral(nodes)
        return [fill_after(state, gpus, ctx.gpu_resource) for state in nodes]
