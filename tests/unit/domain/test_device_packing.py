"""Device-level FGD: shares go where they fragment least what the learned demand needs."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.cluster import ClusterState, Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.scoring.device_packing import DevicePacking
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE, ScoringContext
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, Scorer
from scheduler_extender.domain.shapes import ShapeMix
from tests.builders import GPU, node, pod, pod_json
from tests.dra_builders import claim_json, device_class_json, slice_json


def claimant(name: str, *claims: str) -> Pod:
    raw = pod_json(name, 0)
    raw["spec"]["resourceClaims"] = [{"name": c, "resourceClaimName": c} for c in claims]
    return pod_from_json(raw, "agent")


def build(nodes: dict[str, int], claims: list[dict[str, Any]]) -> ClusterState:
    state = ClusterState()
    for name, gpus in nodes.items():
        state.upsert_node(node(name, 0))
        state.upsert_slice(slice_from_json(slice_json(name, gpus, memory="80Gi")))
    state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
    for raw in claims:
        state.upsert_claim(claim_from_json(raw))
    return state


def scores(state: ClusterState, pod: Pod, names: list[str]) -> dict[str, float]:
    snapshot: Snapshot = state.snapshot()
    rows = snapshot.columns.rows_of(names)
    ctx = ScoringContext(snapshot, Popularity({}), GPU)
    values = DevicePacking().score(pod, rows, ctx)
    return dict(zip(names, values.tolist(), strict=True))


def test_a_share_stacks_on_a_shared_device_rather_than_break_a_whole_one() -> None:
    # node-a: one GPU with 40Gi taken by a share; node-b: untouched. Demand: whole GPUs and
    # 20Gi shares. A 20Gi share on node-a costs whole-GPU room nothing; on node-b it does.
    state = build(
        {"node-a": 1, "node-b": 1},
        [
            claim_json("old", memory="40Gi", allocated=[("node-a", "gpu-0")], consumed="40Gi"),
            claim_json("whole-1"),
            claim_json("whole-2"),
            claim_json("share", memory="20Gi"),
        ],
    )
    got = scores(state, claimant("p", "share"), ["node-a", "node-b"])
    assert got["node-a"] > got["node-b"]


def test_a_share_avoids_leaving_a_remnant_no_request_can_use() -> None:
    # node-a: 45Gi left, node-b: 60Gi left; the demand is 40Gi shares. A 10Gi share on node-a
    # (the fuller) leaves 35Gi, of no use to a 40Gi share; on node-b 50Gi, still one share's.
    state = build(
        {"node-a": 1, "node-b": 1},
        [
            claim_json("a", memory="35Gi", allocated=[("node-a", "gpu-0")], consumed="35Gi"),
            claim_json("b", memory="20Gi", allocated=[("node-b", "gpu-0")], consumed="20Gi"),
            claim_json("forty-1", memory="40Gi"),
            claim_json("forty-2", memory="40Gi"),
            claim_json("small", memory="10Gi"),
        ],
    )
    got = scores(state, claimant("p", "small"), ["node-a", "node-b"])
    assert got["node-b"] > got["node-a"]  # filling the fullest alone would pick node-a


def test_a_placement_kept_from_an_earlier_pod_is_recomputed_once_its_node_changes() -> None:
    state = build(
        {"node-a": 1, "node-b": 1},
        [
            claim_json("b", memory="20Gi", allocated=[("node-b", "gpu-0")], consumed="20Gi"),
            claim_json("forty-1", memory="40Gi"),
            claim_json("forty-2", memory="40Gi"),
            claim_json("small-1", memory="10Gi"),
            claim_json("small-2", memory="10Gi"),
        ],
    )
    names = ["node-a", "node-b"]
    policy = DevicePacking()

    def with_policy(pod: Pod, the_policy: DevicePacking) -> list[float]:
        snapshot = state.snapshot()
        ctx = ScoringContext(snapshot, Popularity({}), GPU)
        return the_policy.score(pod, snapshot.columns.rows_of(names), ctx).tolist()

    first = with_policy(claimant("p1", "small-1"), policy)
    assert first == with_policy(claimant("p1", "small-1"), DevicePacking())
    # node-a's GPU now has 35Gi taken: a 10Gi share there leaves a remnant of no use.
    state.upsert_claim(
        claim_from_json(
            claim_json("a", memory="35Gi", allocated=[("node-a", "gpu-0")], consumed="35Gi")
        )
    )
    again = with_policy(claimant("p2", "small-2"), policy)
    assert again == with_policy(claimant("p2", "small-2"), DevicePacking())
    assert again != first


def test_whole_devices_go_where_no_whole_device_request_loses_a_node_of_room() -> None:
    # 2-GPU requests are in demand: taking one GPU of node-b (2 free) breaks the only place
    # one fits; node-a (3 free) keeps room for one.
    state = build(
        {"node-a": 3, "node-b": 2},
        [
            claim_json("pair-1", count=2),
            claim_json("pair-2", count=2),
            claim_json("one"),
        ],
    )
    got = scores(state, claimant("p", "one"), ["node-a", "node-b"])
    assert got["node-a"] > got["node-b"]


def test_without_a_learned_demand_the_fullest_devices_win_and_unfit_nodes_score_zero() -> None:
    state = build(
        {"node-a": 1, "node-b": 1, "node-c": 1},
        [
            claim_json("a", memory="60Gi", allocated=[("node-a", "gpu-0")], consumed="60Gi"),
            claim_json("c", memory="75Gi", allocated=[("node-c", "gpu-0")], consumed="75Gi"),
            claim_json("share", memory="10Gi"),
        ],
    )
    learned = state.snapshot()
    devices = dataclasses.replace(learned.devices, demand=ShapeMix())  # nothing learned
    snapshot = dataclasses.replace(learned, devices=devices)
    names = ["node-a", "node-b", "node-c"]
    values = DevicePacking().score(
        claimant("p", "share"),
        snapshot.columns.rows_of(names),
        ScoringContext(snapshot, Popularity({}), GPU),
    )
    got = dict(zip(names, values.tolist(), strict=True))
    assert got["node-c"] == 0.0  # 5Gi left: it does not fit
    assert got["node-a"] > got["node-b"]


def test_pods_without_pending_claims_get_no_opinion() -> None:
    state = build({"node-a": 1}, [claim_json("done", allocated=[("node-a", "gpu-0")])])
    for subject in (pod("plain", 1), claimant("p", "done"), claimant("q", "unknown")):
        got = scores(state, subject, ["node-a"])
        assert got == {"node-a": NEUTRAL_SCORE}


def test_the_scorer_gives_device_pods_to_the_device_policy() -> None:
    scorer = Scorer.from_weights(DEFAULT_WEIGHTS)
    state = build({"node-a": 1, "node-b": 1}, [claim_json("c", memory="10Gi")])
    snapshot = state.snapshot()
    ctx = ScoringContext(snapshot, Popularity({}), GPU)
    no_devices = ScoringContext(ClusterState().snapshot(), Popularity({}), GPU)

    def scored_by(subject: Pod, context: ScoringContext) -> list[str]:
        return [p.name for p, _ in scorer.for_pod(subject, context)]

    assert "device_packing" in scored_by(claimant("p", "c"), ctx)
    assert "device_packing" not in scored_by(pod("q", 1), ctx)
    # A pod that asks for no GPU takes cpu that devices need, where there are devices.
    assert "device_packing" in scored_by(pod("cpu-only", 0), ctx)
    assert "device_packing" not in scored_by(pod("cpu-only", 0), no_devices)
    table = scorer.score(
        claimant("p", "c"),
        ["node-a", "node-b"],
        snapshot.columns.rows_of(["node-a", "node-b"]),
        ctx,
        explain=True,
    )
    assert set(table.contributions) >= {"device_packing"}
    assert np.all(np.array(table.scores) >= 0)


def test_a_share_goes_where_the_cpu_left_could_not_feed_a_whole_device_anyway() -> None:
    # Both nodes: one GPU half taken by a 40Gi share whose pod asks for 8 cpu, one untouched;
    # 16 cpu per device unit allocated, so a whole GPU comes with 16 cpu. The 20Gi share
    # (10 cpu) takes the half-taken GPU on either node: the devices cannot tell the nodes
    # apart. On node-b (24 cpu free) it leaves 14: too little for the whole GPU's pod, which
    # node-b could feed before; node-a (8 free) could not feed one anyway.
    state = ClusterState()
    for name, cpu in (("node-a", "16"), ("node-b", "32")):
        state.upsert_node(node(name, 0, cpu=cpu))
        state.upsert_slice(slice_from_json(slice_json(name, 2, memory="80Gi")))
        state.upsert_pod(pod(f"on-{name}", 0, cpu="8", node=name, phase="Running"))
    state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
    for raw in (
        claim_json("a", memory="40Gi", allocated=[("node-a", "gpu-0")], consumed="40Gi"),
        claim_json("b", memory="40Gi", allocated=[("node-b", "gpu-0")], consumed="40Gi"),
        claim_json("whole-1"),
        claim_json("whole-2"),
        claim_json("share", memory="20Gi"),
    ):
        state.upsert_claim(claim_from_json(raw))
    raw_pod = pod_json("p", 0, cpu="10")
    raw_pod["spec"]["resourceClaims"] = [{"name": "share", "resourceClaimName": "share"}]
    got = scores(state, pod_from_json(raw_pod, "agent"), ["node-a", "node-b"])
    assert got["node-a"] > got["node-b"]


def test_nodes_alike_score_alike_and_a_node_that_changes_is_told_apart() -> None:
    # What a placement does is worked out once per node makeup (devices' kinds and
    # states): node-a and node-c are alike, node-b's GPU holds a share.
    state = build(
        {"node-a": 1, "node-b": 1, "node-c": 1},
        [
            claim_json("b", memory="35Gi", allocated=[("node-b", "gpu-0")], consumed="35Gi"),
            claim_json("forty-1", memory="40Gi"),
            claim_json("forty-2", memory="40Gi"),
            claim_json("small", memory="10Gi"),
        ],
    )
    names = ["node-a", "node-b", "node-c"]
    policy = DevicePacking()

    def scored() -> dict[str, float]:
        snapshot = state.snapshot()
        ctx = ScoringContext(snapshot, Popularity({}), GPU)
        values = policy.score(claimant("p", "small"), snapshot.columns.rows_of(names), ctx)
        return dict(zip(names, values.tolist(), strict=True))

    first = scored()
    assert first["node-a"] == first["node-c"] != first["node-b"]
    state.upsert_claim(
        claim_from_json(
            claim_json("c", memory="35Gi", allocated=[("node-c", "gpu-0")], consumed="35Gi")
        )
    )
    again = scored()
    assert again["node-c"] == again["node-b"] != again["node-a"]


def test_what_a_shapes_pods_ask_decides_which_nodes_could_feed_it() -> None:
    # Two untouched GPUs: node-a with 8 cpu, node-b with 64. The pods that ask for whole GPUs
    # come with 32 cpu each, so node-a could never feed one: a share breaks its GPU for
    # nothing, while on node-b it costs a whole GPU's room. (Nothing is allocated yet, so
    # without what the pods ask there is no cpu to go by and the two would tie.)
    state = ClusterState()
    for name, cpu in (("node-a", "8"), ("node-b", "64")):
        state.upsert_node(node(name, 0, cpu=cpu))
        state.upsert_slice(slice_from_json(slice_json(name, 1, memory="80Gi")))
    state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
    for raw in (claim_json("whole-1"), claim_json("whole-2"), claim_json("share", memory="20Gi")):
        state.upsert_claim(claim_from_json(raw))
    for name in ("whole-1", "whole-2"):
        raw_pod = pod_json(f"wants-{name}", 0, cpu="32")
        raw_pod["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": name}]
        state.upsert_pod(pod_from_json(raw_pod, "agent"))
    got = scores(state, claimant("p", "share"), ["node-a", "node-b"])
    assert got["node-a"] > got["node-b"]


def test_a_pod_that_asks_for_no_device_keeps_off_the_cpu_free_devices_need() -> None:
    # 16 cpu each; node-a's GPU is taken by a pod asking 8 cpu, node-b's is free and whole
    # GPUs are in demand (8 cpu each, as that pod asked). A pod asking 12 cpu and no device
    # on node-b would leave 4: too little to feed its GPU. On node-a it costs no device.
    state = build({"node-a": 1, "node-b": 1}, [])
    for name in ("node-a", "node-b"):
        state.upsert_node(node(name, 0, cpu="16"))
    state.upsert_claim(claim_from_json(claim_json("old", allocated=[("node-a", "gpu-0")])))
    state.upsert_claim(claim_from_json(claim_json("whole")))
    raw_pod = pod_json("holder", 0, cpu="8", node="node-a", phase="Running")
    raw_pod["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": "old"}]
    state.upsert_pod(pod_from_json(raw_pod, "agent"))
    got = scores(state, pod("cpu-only", 0, cpu="12"), ["node-a", "node-b"])
    assert got["node-a"] > got["node-b"]
    # A pod asking for GPUs without claims is not this policy's.
    assert set(scores(state, pod("gpu", 1), ["node-a", "node-b"]).values()) == {NEUTRAL_SCORE}


def test_a_pod_that_asks_for_no_device_gets_no_opinion_where_no_node_has_devices() -> None:
    # Claims and the pods that ask for them are known (so is the cpu a GPU comes with), but no
    # driver has published a device: nothing to keep cpu for.
    state = ClusterState()
    state.upsert_node(node("node-a", 0))
    state.upsert_claim(claim_from_json(claim_json("whole")))
    raw_pod = pod_json("wants", 0, cpu="8")
    raw_pod["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": "whole"}]
    state.upsert_pod(pod_from_json(raw_pod, "agent"))
    assert state.snapshot().devices.needs
    assert scores(state, pod("cpu-only", 0), ["node-a"]) == {"node-a": NEUTRAL_SCORE}
