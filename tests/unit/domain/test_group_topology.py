"""Group members go inside one NVLink domain, else one rack, else one zone."""

from __future__ import annotations

import dataclasses

import numpy as np

from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.groups import (
    GROUP_LABEL,
    GROUP_SIZE_ANNOTATION,
    NVLINK_LABEL,
    RACK_LABEL,
    ZONE_LABEL,
)
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import NEUTRAL
from scheduler_extender.domain.scoring.group_topology import GroupTopology
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE, ScoringContext
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, Scorer
from tests.builders import GPU, node, pod, pod_json

AGENT_LABEL = "scheduler-extender.io/agent"
# name -> (NVLink domain, rack, zone)
LAYOUT = {
    "a1": ("nvl-a", "r1", "z1"),
    "a2": ("nvl-a", "r1", "z1"),
    "b1": ("nvl-b", "r1", "z1"),
    "c1": ("nvl-c", "r2", "z1"),
    "d1": ("nvl-d", "r3", "z2"),
}


def topology_fleet() -> ClusterState:
    state = ClusterState()
    for name, (clique, rack, zone) in LAYOUT.items():
        labels = {NVLINK_LABEL: clique, RACK_LABEL: rack, ZONE_LABEL: zone}
        state.upsert_node(node(name, 8, labels=labels))
    return state


def member(name: str, gpus: int = 2, node_name: str = "", agent: str | None = None) -> Pod:
    raw = pod_json(name, gpus, node=node_name, namespace="ml", agent=agent)
    raw["metadata"]["labels"][GROUP_LABEL] = "ep"
    return pod_from_json(raw, AGENT_LABEL)


def scores(state: ClusterState, p: Pod, names: list[str]) -> list[float]:
    snapshot = state.snapshot()
    rows = snapshot.columns.rows_of(names)
    result = GroupTopology().score(p, rows, ScoringContext(snapshot, NEUTRAL, GPU))
    return [float(x) for x in result]


def test_members_join_the_nvlink_domain_then_the_rack_then_the_zone() -> None:
    state = topology_fleet()
    state.upsert_pod(member("m0", node_name="a1"))
    a2, b1, c1, d1 = scores(state, member("m1"), ["a2", "b1", "c1", "d1"])
    assert a2 > b1 > c1 > d1
    assert d1 == 0.0


def test_the_group_grows_where_most_of_it_is() -> None:
    state = topology_fleet()
    state.upsert_pod(member("m0", node_name="a1"))
    state.upsert_pod(member("m1", node_name="a1"))
    state.upsert_pod(member("m2", node_name="c1"))
    a2, c1 = scores(state, member("m3"), ["a2", "c1"])
    assert a2 > c1


def test_the_first_member_goes_to_the_roomiest_nvlink_domain() -> None:
    state = topology_fleet()
    state.upsert_pod(pod("other", 6, node="b1"))
    a1, b1, c1 = scores(state, member("m0"), ["a1", "b1", "c1"])
    assert a1 > c1 > b1  # nvl-a has 16 free GPUs, nvl-c 8, nvl-b 2


def sized(p: Pod, size: int) -> Pod:
    return dataclasses.replace(p, annotations={**p.annotations, GROUP_SIZE_ANNOTATION: str(size)})


def test_a_group_of_declared_size_starts_in_the_tightest_domain_that_holds_it() -> None:
    # Free GPUs: nvl-a 16, nvl-c 8, nvl-b 2. Four 2-GPU members need 8: nvl-c holds them
    # and keeps nvl-a whole for a larger group; eight need 16: only nvl-a holds them.
    state = topology_fleet()
    state.upsert_pod(pod("other", 6, node="b1"))
    a1, b1, c1 = scores(state, sized(member("m0"), 4), ["a1", "b1", "c1"])
    assert c1 > a1 > b1
    a1, b1, c1 = scores(state, sized(member("m0"), 8), ["a1", "b1", "c1"])
    assert a1 > c1 > b1
    # Twelve need 24, more than any domain: the one that holds most of it.
    a1, b1, c1 = scores(state, sized(member("m0"), 12), ["a1", "b1", "c1"])
    assert a1 > c1 > b1


def test_pods_of_no_group_get_no_opinion() -> None:
    state = topology_fleet()
    assert scores(state, pod("plain", 1), ["a1", "c1"]) == [NEUTRAL_SCORE] * 2


def test_group_pods_are_scored_by_topology_besides_their_usual_policies() -> None:
    state = topology_fleet()
    state.upsert_pod(member("m0", node_name="a1"))
    snapshot = state.snapshot()
    names = ["c1", "a2", "b1"]
    rows = snapshot.columns.rows_of(names)
    ctx = ScoringContext(snapshot, NEUTRAL, GPU)
    scorer = Scorer.from_weights(DEFAULT_WEIGHTS)
    table = scorer.score(member("m1"), names, rows, ctx, explain=True)
    assert set(table.contributions) == {"demand_packing", "group_topology"}
    assert names[int(np.argmax(table.scores))] == "a2"
    replica = scorer.score(member("r", agent="moe"), names, rows, ctx, explain=True)
    assert set(replica.contributions) == {
        "gpu_binpack",
        "agent_spread",
        "popularity",
        "group_topology",
    }
