"""Pod groups whose members should share fast links, and the topology labels of nodes.

A group is a set of pods that talk to each other heavily (an expert-parallel or
tensor-parallel model spread over several pods), so they should sit inside one
NVLink domain, else one rack. Users declare one in either way:

* a LeaderWorkerSet group: the pods LeaderWorkerSet labels with
  ``leaderworkerset.sigs.k8s.io/name`` and ``leaderworkerset.sigs.k8s.io/group-index``
  (a leader and its workers);
* any pods labelled ``scheduler-extender.io/group: <name>`` (per namespace).

Nodes tell their topology by labels: ``nvidia.com/gpu.clique`` (the NVLink
domain, as NVIDIA's GPU feature discovery sets it on multi-node NVLink
systems), ``topology.scheduler-extender.io/rack`` and ``topology.kubernetes.io/zone``.
"""

from __future__ import annotations

from scheduler_extender.domain.objects import Pod

LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
GROUP_LABEL = "scheduler-extender.io/group"

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
