"""Preemption candidates must pass the extender's own filter once their victims are gone."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.domain.cluster import ClusterState, Snapshot
from scheduler_extender.domain.devices import PodClaim
from scheduler_extender.domain.filtering import FilterRules, Reason, Rejection
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.preemption import Refinement, refine_candidates
from scheduler_extender.domain.packing.reservations import Reservation, ReservationBook
from scheduler_extender.domain.packing.what_if import rejected_after_eviction
from scheduler_extender.domain.resources import Resources
from scheduler_extender.domain.shared import SharedCluster
from tests.dra_builders import claim_json, device_class_json, slice_json
from tests.unit.domain.packing.scenarios import GPU, node, pod

NO_RULES = FilterRules()
ONE_PER_NODE = FilterRules(max_agent_replicas_per_node=1)


def snapshot_of(
    pods: Sequence[Pod],
    *,
    book: ReservationBook | None = None,
    assumed: Mapping[str, Pod] | None = None,  # node -> a pod we bound, not watched yet
) -> Snapshot:
    shared = SharedCluster(assume_timeout=30.0)
    with shared.locked():
        shared.state.replace_nodes([node("a", gpu=8), node("b", gpu=8), node("small", gpu=4)])
        shared.state.replace_pods(list(pods))
        for where, p in (assumed or {}).items():
            shared.assume_locked(p, where)
        shared.state.synced = True
        shared.publish_locked()
    if book is not None:
        shared.publish_rule("reservations", book)
    return shared.snapshot()


def after_eviction(
    preemptor: Pod, node: str, victims: Sequence[Pod], snapshot: Snapshot, rules: FilterRules
) -> Rejection | None:
    return rejected_after_eviction(preemptor, {node: victims}, snapshot, rules).get(node)


def refine(
    preemptor: Pod,
    candidates: Mapping[str, Sequence[Pod]],
    snapshot: Snapshot,
    rules: FilterRules = NO_RULES,
) -> Refinement:
    # Every victim here is counted on its candidate node.
    return refine_candidates(
        preemptor, dict(candidates), snapshot, rules=rules, counted=dict(candidates)
    )


def test_victims_that_free_enough_gpus_keep_the_node() -> None:
    low = pod("low", gpu=6, on="a", owner=None)
    refinement = refine(pod("big", gpu=8), {"a": [low]}, snapshot_of([low]))
    assert refinement.kept == ("a",)
    assert not refinement.dropped


def test_victims_of_another_agent_do_not_lift_the_agent_limit() -> None:
    mine = pod("mine", gpu=2, on="a", owner=None, agent="x")
    theirs = pod("theirs", gpu=6, on="a", owner=None, agent="y")
    other = pod("other", gpu=8, on="b", owner=None, agent="y")
    snapshot = snapshot_of([mine, theirs, other])
    preemptor = pod("new", gpu=6, agent="x")
    refinement = refine(preemptor, {"a": [theirs], "b": [other]}, snapshot, ONE_PER_NODE)
    assert refinement.kept == ("b",)
    assert "agent 'x'" in refinement.dropped["a"]
    assert "a" not in refinement.unresolvable  # evicting x's own replica would help
    # A victim of the preemptor's own agent does lift it.
    assert after_eviction(preemptor, "a", [mine, theirs], snapshot, ONE_PER_NODE) is None


def test_room_a_plan_reserved_for_another_pod_is_not_freed_by_the_victims() -> None:
    low_a = pod("low-a", gpu=8, on="a", owner=None)
    low_b = pod("low-b", gpu=8, on="b", owner=None)
    book = ReservationBook.of(
        [Reservation("a", Resources.of({GPU: 8}), 1e12, pod_uid="uid-someone-else")]
    )
    snapshot = snapshot_of([low_a, low_b], book=book)
    refinement = refine(pod("big", gpu=8), {"a": [low_a], "b": [low_b]}, snapshot)
    assert refinement.kept == ("b",)
    assert "reserved by a packing plan" in refinement.dropped["a"]
    assert "a" not in refinement.unresolvable


def test_a_plan_that_reserved_other_nodes_for_the_preemptor_is_unresolvable() -> None:
    low_a = pod("low-a", gpu=8, on="a", owner=None)
    low_b = pod("low-b", gpu=8, on="b", owner=None)
    book = ReservationBook.of([Reservation("b", Resources.of({GPU: 8}), 1e12, pod_uid="uid-big")])
    snapshot = snapshot_of([low_a, low_b], book=book)
    refinement = refine(pod("big", gpu=8), {"a": [low_a], "b": [low_b]}, snapshot)
    assert refinement.kept == ("b",)
    assert refinement.unresolvable == {"a"}


def test_gpus_our_own_binds_hold_stay_taken() -> None:
    low = pod("low", gpu=4, on="a", owner=None)
    ours = pod("ours", gpu=4, owner=None)
    snapshot = snapshot_of([low], assumed={"a": ours})
    refinement = refine(pod("big", gpu=8), {"a": [low]}, snapshot)
    assert refinement.kept == ()
    assert "Insufficient nvidia.com/gpu" in refinement.dropped["a"]
    assert "a" not in refinement.unresolvable


def test_a_node_whose_total_capacity_is_below_the_request_is_unresolvable() -> None:
    low = pod("low", gpu=4, on="small", owner=None)
    refinement = refine(pod("big", gpu=8), {"small": [low]}, snapshot_of([low]))
    assert refinement.kept == ()
    assert refinement.unresolvable == {"small"}
    rejection = after_eviction(pod("big", gpu=8), "small", [low], snapshot_of([low]), NO_RULES)
    assert rejection is not None
    assert rejection.reason is Reason.EXCEEDS_CAPACITY


def test_only_victims_the_snapshot_counts_on_the_node_give_room_back() -> None:
    low = pod("low", gpu=8, on="a", owner=None)
    snapshot = snapshot_of([low])
    big = pod("big", gpu=8)
    # kube-scheduler names "low" as a victim on a, but we were told it is not counted there.
    refinement = refine_candidates(big, {"a": [low]}, snapshot, rules=NO_RULES, counted={})
    assert refinement.kept == ()
    # A victim listed twice is given back once.
    half = pod("half", gpu=4, on="a", owner=None)
    rest = pod("rest", gpu=4, on="a", owner=None)
    crowded = snapshot_of([half, rest])
    rejection = after_eviction(big, "a", [half, half], crowded, NO_RULES)
    assert rejection is not None
    assert rejection.reason is Reason.INSUFFICIENT


def test_a_node_the_cache_does_not_know_is_dropped() -> None:
    low = pod("low", gpu=8, on="ghost", owner=None)
    refinement = refine(pod("big", gpu=8), {"ghost": [low]}, snapshot_of([low]))
    assert refinement.kept == ()
    assert "not in the extender's cache" in refinement.dropped["ghost"]


def test_a_candidate_failing_our_filter_does_not_make_others_look_worse() -> None:
    # "a" would be move-only, but our filter refuses it: "b" must not be dropped for it.
    movable = pod("movable", gpu=2, on="a", agent="y")
    mine = pod("mine", gpu=2, on="a", owner=None, agent="x")
    bare = pod("bare", gpu=8, on="b", owner=None)
    snapshot = snapshot_of([movable, mine, bare])
    preemptor = pod("new", gpu=6, agent="x")
    refinement = refine(preemptor, {"a": [movable], "b": [bare]}, snapshot, ONE_PER_NODE)
    assert refinement.kept == ("b",)


def test_devices_a_victims_claim_holds_are_not_given_back() -> None:
    # As in kube-scheduler 1.36: its DynamicResources plugin has no PreFilterExtensions, so
    # removing a victim in the preemption simulation frees none of its devices (and a node
    # whose devices cannot serve the claims is UnschedulableAndUnresolvable there, never a
    # candidate). Giving them back here would keep candidates kube-scheduler cannot use.
    state = ClusterState()
    state.upsert_node(node("a", gpu=0))
    state.upsert_slice(slice_from_json(slice_json("a", 1, memory="80Gi")))
    state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
    state.upsert_claim(claim_from_json(claim_json("held", allocated=[("a", "gpu-0")])))
    state.upsert_claim(claim_from_json(claim_json("wanted")))
    victim = with_claim(pod("low", on="a", owner=None), "held")
    state.upsert_pod(victim)
    rejection = after_eviction(
        with_claim(pod("high", priority=100), "wanted"), "a", [victim], state.snapshot(), NO_RULES
    )
    assert rejection is not None
    assert rejection.reason is Reason.DEVICES


def with_claim(p: Pod, claim: str) -> Pod:
    return dataclasses.replace(p, claims=(PodClaim("gpu", claim),))
