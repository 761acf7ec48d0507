"""Small hand-made clusters with a known best plan."""

from __future__ import annotations

from typing import Any

from scheduler_extender.domain.objects import Node, Owner, Pod
from scheduler_extender.domain.resources import CPU, PODS, Resources

GPU = "nvidia.com/gpu"


def node(name: str, *, cpu: int = 4, gpu: int = 0, **kwargs: Any) -> Node:
    return Node(
        name=name,
        allocatable=Resources.of({CPU: cpu * 1000, GPU: gpu, PODS: 110}),
        labels={"kubernetes.io/hostname": name},
        **kwargs,
    )


def pod(
    name: str,
    *,
    cpu: int = 1,
    gpu: int = 0,
    priority: int = 0,
    on: str = "",
    owner: str | None = "rs",
    kind: str = "ReplicaSet",
    **kwargs: Any,
) -> Pod:
    """A pod of ReplicaSet ``owner`` (None: a bare pod), running ``on`` a node or pending."""
    return Pod(
        name=name,
        namespace=str(kwargs.pop("namespace", "default")),
        uid=f"uid-{name}",
        requests=Resources.of({CPU: cpu * 1000, GPU: gpu, PODS: 1}),
        node_name=on,
        phase="Running" if on else "Pending",
        priority=priority,
        labels={"app": owner or name, "pod-template-hash": "h"},
        owner=Owner(kind, owner, f"uid-{owner}") if owner else None,
        **kwargs,
    )
