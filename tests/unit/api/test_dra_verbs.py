"""The verbs for pods with DRA claims: filter on devices, bind re-checked on the allocation."""

from __future__ import annotations

from typing import Any

from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.adapters.kube.schema import pod_from_json
from tests.builders import AGENT_LABEL, node, pod_json
from tests.dra_builders import claim_json, device_class_json, slice_json
from tests.unit.conftest import Harness


def claimant_json(name: str, claim: str) -> dict[str, Any]:
    raw = pod_json(name, 0)
    raw["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": claim}]
    return raw


def devices(h: Harness, *claims: dict[str, Any]) -> None:
    """Nodes a and b, one shared 80Gi GPU each."""
    with h.cluster.locked():
        state = h.cluster.state
        for name in ("a", "b"):
            state.upsert_node(node(name, 0))
            state.upsert_slice(slice_from_json(slice_json(name, 1, memory="80Gi")))
        state.upsert_device_class(device_class_from_json(device_class_json("gpu")))
        for raw in claims:
            state.upsert_claim(claim_from_json(raw))
        h.cluster.publish_locked()


def test_filter_answers_on_devices(harness: Harness) -> None:
    devices(
        harness,
        claim_json("full", memory="70Gi", allocated=[("a", "gpu-0")], consumed="70Gi"),
        claim_json("mine", memory="20Gi"),
    )
    body = {"Pod": claimant_json("p", "mine"), "NodeNames": ["a", "b"]}
    reply = harness.client.post("/scheduler/filter", json=body).json()
    assert reply["NodeNames"] == ["b"]
    assert "no free devices" in reply["FailedNodes"]["a"]


def test_bind_refuses_a_node_other_than_where_the_claim_was_allocated(harness: Harness) -> None:
    devices(harness, claim_json("mine", memory="20Gi", allocated=[("b", "gpu-0")], consumed="20Gi"))
    raw = claimant_json("p", "mine")
    p = pod_from_json(raw, AGENT_LABEL)
    with harness.cluster.locked():
        harness.cluster.state.upsert_pod(p)
        harness.cluster.publish_locked()
    args = {"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
    error = harness.client.post("/scheduler/bind", json=args).json()["Error"]
    assert "allocated devices of node b" in error
    assert harness.binder.bound == {}
    args["Node"] = "b"
    assert harness.client.post("/scheduler/bind", json=args).json() == {"Error": ""}
    assert harness.binder.bound == {p.uid: "b"}
