"""Hot agents' shares are not stacked on one device."""

from __future__ import annotations

from typing import Any

from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.scoring.device_popularity import DevicePopularity
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE, ScoringContext
from tests.builders import AGENT_LABEL, GPU, node, pod_json
from tests.dra_builders import claim_json, device_class_json, slice_json


def replica(name: str, agent: str, claim: str, *, on: str = "", uid: str = "") -> Pod:
    raw = pod_json(name, 0, agent=agent, node=on, uid=uid or f"uid-{name}")
    raw["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": claim}]
    return pod_from_json(raw, AGENT_LABEL)


def held(name: str, node: str, pod_uid: str, memory: str = "20Gi") -> dict[str, Any]:
    raw = claim_json(name, memory=memory, allocated=[(node, "gpu-0")], consumed=memory)
    raw["status"]["reservedFor"] = [{"resource": "pods", "name": name, "uid": pod_uid}]
    return raw


def cluster() -> ClusterState:
    """Two nodes of one shared 80Gi GPU: node-a's holds a share of the hot agent, node-b's
    a share of a cold one."""
    state = ClusterState()
    for name in ("node-a", "node-b"):
        state.upsert_node(node(name, 0))
        state.upsert_slice(slice_from_json(slice_json(name, 1, memory="80Gi")))
    state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
    state.upsert_claim(claim_from_json(held("hot-0", "node-a", "uid-hot-0")))
    state.upsert_claim(claim_from_json(held("cold-0", "node-b", "uid-cold-0")))
    state.upsert_claim(claim_from_json(claim_json("new", memory="20Gi")))
    return state


def scores(state: ClusterState, pod: Pod, popularity: Popularity) -> dict[str, float]:
    snapshot = state.snapshot()
    names = ["node-a", "node-b"]
    values = DevicePopularity().score(
        pod, snapshot.columns.rows_of(names), ScoringContext(snapshot, popularity, GPU)
    )
    return dict(zip(names, values.tolist(), strict=True))


RATES = Popularity({"hot": 100.0, "cold": 1.0})


def test_a_hot_replicas_share_goes_to_the_device_without_the_hot_agent() -> None:
    state = cluster()
    # The pods are seen after their claims: the devices learn their agents then.
    state.upsert_pod(replica("hot-0", "hot", "hot-0", on="node-a", uid="uid-hot-0"))
    state.upsert_pod(replica("cold-0", "cold", "cold-0", on="node-b", uid="uid-cold-0"))
    devices = state.snapshot().devices
    assert devices.nodes["node-a"].devices[0].agents == ("hot",)
    got = scores(state, replica("hot-1", "hot", "new"), RATES)
    assert got["node-b"] > got["node-a"]


def test_without_the_pods_agents_or_a_forecast_there_is_no_opinion() -> None:
    state = cluster()  # the holders' pods are not known: no agent on any device
    got = scores(state, replica("hot-1", "hot", "new"), RATES)
    assert got["node-a"] == got["node-b"]
    state.upsert_pod(replica("hot-0", "hot", "hot-0", on="node-a", uid="uid-hot-0"))
    assert scores(state, replica("hot-1", "hot", "new"), Popularity({})) == {
        "node-a": NEUTRAL_SCORE,
        "node-b": NEUTRAL_SCORE,
    }
