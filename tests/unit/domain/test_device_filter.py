"""The filter on DRA devices: claims that certainly cannot be satisfied close a node, never more;
allocated claims tie the pod to their devices' node; extended resources mapped to devices."""

from __future__ import annotations

from typing import Any

from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.filtering import FilterRules, Reason, check_node, filter_nodes
from scheduler_extender.domain.objects import Pod
from tests.builders import node, pod_json
from tests.dra_builders import claim_json, device_class_json, slice_json

RULES = FilterRules()


def claimant(name: str, *claims: str, extra: dict[str, Any] | None = None) -> Pod:
    raw = pod_json(name, 0)
    raw["spec"]["resourceClaims"] = [{"name": c, "resourceClaimName": c} for c in claims]
    raw["spec"].update(extra or {})
    return pod_from_json(raw, "agent")


def cluster(*claims: dict[str, Any]) -> ClusterState:
    """node-a: 2 shared 80Gi H100s; node-b: 1 L4 (24Gi, not shared); node-c: no devices."""
    state = ClusterState()
    for name in ("node-a", "node-b", "node-c"):
        state.upsert_node(node(name, 0))
    state.upsert_slice(slice_from_json(slice_json("node-a", 2, memory="80Gi")))
    state.upsert_slice(
        slice_from_json(slice_json("node-b", 1, product="L4", memory="24Gi", shared=False))
    )
    state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
    state.upsert_device_class(device_class_from_json(device_class_json("h100", product="H100")))
    for raw in claims:
        state.upsert_claim(claim_from_json(raw))
    return state


NODES = ["node-a", "node-b", "node-c"]


def test_a_whole_device_claim_passes_nodes_with_free_devices_of_its_class() -> None:
    state = cluster(claim_json("one"), claim_json("h100", device_class="h100", count=2))
    outcome = filter_nodes(claimant("p", "one"), NODES, state.snapshot(), RULES)
    assert outcome.passed == ["node-a", "node-b"]
    assert outcome.failed["node-c"].reason is Reason.DEVICES
    assert outcome.failed["node-c"].unresolvable
    two_h100 = filter_nodes(claimant("q", "h100"), NODES, state.snapshot(), RULES)
    assert two_h100.passed == ["node-a"]
    assert not two_h100.failed["node-b"].unresolvable  # it has devices, not these


def test_shares_pass_while_a_device_has_the_capacity_left() -> None:
    taken = [("node-a", "gpu-0"), ("node-a", "gpu-1")]
    state = cluster(
        claim_json("old", memory="70Gi", allocated=taken[:1], consumed="70Gi"),
        claim_json("old2", memory="70Gi", allocated=taken[1:], consumed="70Gi"),
        claim_json("small", memory="10Gi"),
        claim_json("big", memory="20Gi"),
    )
    snapshot = state.snapshot()
    assert check_node(claimant("s", "small"), "node-a", snapshot, RULES) is None
    rejection = check_node(claimant("b", "big"), "node-a", snapshot, RULES)
    assert rejection is not None
    assert rejection.reason is Reason.DEVICES
    # node-b's device is not shared but whole and larger than 20Gi: it can take it.
    assert check_node(claimant("b", "big"), "node-b", snapshot, RULES) is None


def test_an_unknown_claim_or_class_closes_nothing() -> None:
    state = cluster(claim_json("odd", device_class="not-there", count=9))
    snapshot = state.snapshot()
    assert filter_nodes(claimant("p", "missing"), NODES, snapshot, RULES).passed == NODES
    assert filter_nodes(claimant("p", "odd"), NODES, snapshot, RULES).passed == NODES


def test_an_allocated_claim_ties_the_pod_to_its_devices_node() -> None:
    state = cluster(claim_json("done", allocated=[("node-b", "gpu-0")]))
    snapshot = state.snapshot()
    pod = claimant("p", "done")
    # The bind re-check uses the allocation: its devices are on node-b, so only node-b passes.
    assert check_node(pod, "node-b", snapshot, RULES) is None
    elsewhere = check_node(pod, "node-a", snapshot, RULES)
    assert elsewhere is not None
    assert "node-b" in elsewhere.message


def test_a_deleted_slice_closes_its_node_and_a_new_generation_replaces_it() -> None:
    state = cluster(claim_json("one", device_class="h100"))
    pod = claimant("p", "one")
    assert check_node(pod, "node-a", state.snapshot(), RULES) is None
    state.delete_slice(slice_json("node-a")["metadata"]["name"])
    assert check_node(pod, "node-a", state.snapshot(), RULES) is not None
    replaced = slice_json("node-a", 1, product="L4", generation=2, name="node-a-v2")
    state.upsert_slice(slice_from_json(replaced))
    rejection = check_node(pod, "node-a", state.snapshot(), RULES)
    assert rejection is not None  # an L4 now, no H100
    assert not rejection.unresolvable


def test_an_extended_resource_mapped_to_a_class_is_checked_on_devices() -> None:
    state = cluster()
    mapped = device_class_json("gpu")
    mapped["spec"]["extendedResourceName"] = "example.com/gpu"
    state.upsert_device_class(device_class_from_json(mapped))
    raw = pod_json("p", 0)
    raw["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] = "2"
    pod = pod_from_json(raw, "agent")
    outcome = filter_nodes(pod, NODES, state.snapshot(), RULES)
    # The nodes advertise no example.com/gpu: two devices of the class are needed instead.
    assert outcome.passed == ["node-a"]
    assert outcome.failed["node-b"].reason is Reason.DEVICES


def test_device_demand_is_learned_from_claims_recent_and_pending() -> None:
    state = cluster(claim_json("a", memory="10Gi"), claim_json("b", memory="10Gi"), claim_json("c"))
    demand = state.snapshot().devices.demand
    weights = dict(zip(demand.classes, demand.weights, strict=True))
    shares = [w for shape, w in weights.items() if shape.shares]
    wholes = [w for shape, w in weights.items() if not shape.shares]
    assert shares == [4.0]  # two seen, both pending
    assert wholes == [2.0]
    state.upsert_claim(
        claim_from_json(
            claim_json("a", memory="10Gi", allocated=[("node-a", "gpu-0")], consumed="10Gi")
        )
    )
    demand = state.snapshot().devices.demand
    weights = dict(zip(demand.classes, demand.weights, strict=True))
    assert sorted(weights.values()) == [2.0, 3.0]


def test_the_claim_kube_scheduler_made_for_a_mapped_resource_is_not_counted_twice() -> None:
    # At bind time kube-scheduler has allocated the pod's extended resources through a claim
    # it made (owned by the pod): those devices are the pod's, not a second request.
    state = cluster()
    mapped = device_class_json("gpu")
    mapped["spec"]["extendedResourceName"] = "example.com/gpu"
    state.upsert_device_class(device_class_from_json(mapped))
    raw = pod_json("p", 0, uid="pod-uid")
    raw["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] = "2"
    pod = pod_from_json(raw, "agent")
    made = claim_json("p-extended-resources", allocated=[("node-a", "gpu-0"), ("node-a", "gpu-1")])
    made["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pod-uid", "controller": True}
    ]
    state.upsert_claim(claim_from_json(made))
    snapshot = state.snapshot()
    # node-a's two devices are taken, by this very pod's claim: the bind there passes.
    assert check_node(pod, "node-a", snapshot, RULES) is None
    elsewhere = check_node(pod, "node-b", snapshot, RULES)
    assert elsewhere is not None
    assert "node-a" in elsewhere.message
    # Another pod asking for two finds node-a full.
    other = pod_from_json(pod_json("q", 0) | {"spec": raw["spec"]}, "agent")
    assert check_node(other, "node-a", snapshot, RULES) is not None


def test_an_answer_kept_for_a_node_is_asked_again_once_the_node_or_the_classes_change() -> None:
    state = cluster(claim_json("one"), claim_json("two"), claim_json("three", device_class="h100"))
    assert filter_nodes(claimant("p", "one"), NODES, state.snapshot(), RULES).passed == [
        "node-a",
        "node-b",
    ]
    # node-b's only device is taken: its view changes, the kept answer must not serve.
    state.upsert_claim(claim_from_json(claim_json("two", allocated=[("node-b", "gpu-0")])))
    assert filter_nodes(claimant("p", "one"), NODES, state.snapshot(), RULES).passed == ["node-a"]
    # The h100 class now means L4s: node-a's view is the same, its answer for h100 is not.
    h100 = filter_nodes(claimant("q", "three"), NODES, state.snapshot(), RULES)
    assert h100.passed == ["node-a"]
    state.upsert_device_class(device_class_from_json(device_class_json("h100", product="L4")))
    h100 = filter_nodes(claimant("q", "three"), NODES, state.snapshot(), RULES)
    assert "node-a" not in h100.passed
