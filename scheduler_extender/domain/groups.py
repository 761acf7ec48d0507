"""Pod groups whose members should share fast links, and the topology labels of nodes.

A group is a set of pods that talk to each other heavily (an expert-parallel or
tensor-parallel model spread over several pods), so they should sit inside one
NVLink domain, else one rack. Users declare one in either way:

* a LeaderWorkerSet group: the pods LeaderWorkerSet labels with
  ``leaderworkerset.sigs.k8s.io/name`` and ``leaderworkerset.sigs.k8s.io/group-index``
  (a leader and its workers);
* any pods labelled ``scheduler-extender.io/group: <name>`` (per namespace).

A group may say how many pods it has: LeaderWorkerSet annotates each pod with
``leaderworkerset.sigs.k8s.io/size``; other pods may carry
``scheduler-extender.io/group-size``. The packing fallback places a gang only
once that many of its pods exist (``declared_size``).

Nodes tell their topology by labels: ``nvidia.com/gpu.clique`` (the NVLink
domain, as NVIDIA's GPU feature discovery sets it on multi-node NVLink
systems), ``topology.scheduler-extender.io/rack`` and ``topology.kubernetes.io/zone``.
"""

from __future__ import annotations

from scheduler_extender.domain.objects import Pod

LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
GROUP_LABEL = "scheduler-extender.io/group"
LWS_SIZE_ANNOTATION = "leaderworkerset.sigs.k8s.io/size"
GROUP_SIZE_ANNOTATION = "scheduler-extender.io/group-size"

NVLINK_LABEL = "nvidia.com/gpu.clique"
RACK_LABEL = "topology.scheduler-extender.io/rack"
ZONE_LABEL = "topology.kubernetes.io/zone"
TOPOLOGY_LABELS = (NVLINK_LABEL, RACK_LABEL, ZONE_LABEL)  # tightest first


def group_of(pod: Pod) -> str | None:
    """The group ``pod`` belongs to, namespaced; None when it belongs to none."""
    labels = pod.labels
    name = labels.get(LWS_NAME_LABEL)
    index = labels.get(LWS_GROUP_INDEX_LABEL)
    if name and index is not None:
        return f"{pod.namespace}/lws/{name}/{index}"
    group = labels.get(GROUP_LABEL)
    if group:
        return f"{pod.namespace}/group/{group}"
    return None


def declared_size(pod: Pod) -> int | None:
    """How many pods ``pod``'s group says it has; None when it says nothing usable."""
    lws = pod.labels.get(LWS_NAME_LABEL) and pod.labels.get(LWS_GROUP_INDEX_LABEL) is not None
    raw = pod.annotations.get(LWS_SIZE_ANNOTATION if lws else GROUP_SIZE_ANNOTATION)
    if raw is None or not raw.strip().isdecimal():
        return None
    size = int(raw)
    return size if size > 0 else None
