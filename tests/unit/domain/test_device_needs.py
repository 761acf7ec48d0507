"""The cpu and memory per device shape, learned from the pods whose claims are known."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scheduler_extender.adapters.kube.dra_schema import claim_from_json
from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.device_needs import NeedsBook
from scheduler_extender.domain.devices import DeviceShape, Needs
from scheduler_extender.domain.objects import Pod
from tests.builders import pod_json
from tests.dra_builders import claim_json

WHOLE = DeviceShape("gpu", 1)
PAIR = DeviceShape("gpu", 2)
GIB = 2**30


def claimant(name: str, *claims: str, cpu: str = "8", template: bool = False) -> Pod:
    raw: dict[str, Any] = pod_json(name, 0, cpu=cpu, memory="16Gi", uid=f"uid-{name}")
    if template:
        raw["spec"]["resourceClaims"] = [
            {"name": c, "resourceClaimTemplateName": "t"} for c in claims
        ]
    else:
        raw["spec"]["resourceClaims"] = [{"name": c, "resourceClaimName": c} for c in claims]
    return pod_from_json(raw, "agent")


def needs(state: ClusterState) -> dict[DeviceShape, Needs]:
    return dict(state.snapshot().devices.needs)


def test_a_pod_adds_its_cpu_and_memory_to_its_claims_shape_once() -> None:
    state = ClusterState()
    state.upsert_claim(claim_from_json(claim_json("one")))
    state.upsert_claim(claim_from_json(claim_json("two")))
    state.upsert_pod(claimant("a", "one", cpu="8"))
    bound = dataclasses.replace(claimant("a", "one", cpu="8"), node_name="node-a")
    state.upsert_pod(bound)  # the same pod, changed: counted once
    state.upsert_pod(claimant("b", "two", cpu="4"))
    assert needs(state) == {WHOLE: Needs(6000, 16 * GIB)}


def test_a_pod_seen_before_its_claim_is_counted_when_the_claim_comes() -> None:
    state = ClusterState()
    state.upsert_pod(claimant("a", "pair", cpu="10"))
    assert needs(state) == {}
    state.upsert_claim(claim_from_json(claim_json("pair", count=2)))
    assert needs(state) == {PAIR: Needs(10_000, 16 * GIB)}


def test_a_pod_with_two_claims_splits_what_it_asks_between_them() -> None:
    state = ClusterState()
    state.upsert_claim(claim_from_json(claim_json("one")))
    state.upsert_claim(claim_from_json(claim_json("pair", count=2)))
    state.upsert_pod(claimant("a", "one", "pair", cpu="10"))
    assert needs(state) == {WHOLE: Needs(5000, 8 * GIB), PAIR: Needs(5000, 8 * GIB)}


def test_a_claim_from_a_template_counts_once_the_pod_names_it() -> None:
    state = ClusterState()
    state.upsert_claim(claim_from_json(claim_json("a-gpu")))
    unnamed = claimant("a", "gpu", template=True)
    state.upsert_pod(unnamed)
    assert needs(state) == {}
    raw = pod_json("a", 0, cpu="8", memory="16Gi", uid="uid-a")
    raw["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t"}]
    raw["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "a-gpu"}]
    state.upsert_pod(pod_from_json(raw, "agent"))
    assert needs(state) == {WHOLE: Needs(8000, 16 * GIB)}


def test_a_pod_gone_stops_waiting_for_its_claim() -> None:
    book = NeedsBook()
    pod = claimant("a", "later")
    assert not book.pod_seen(pod, lambda key: None)
    book.pod_gone(pod.uid)
    assert book.claim_seen("default/later") == []
    assert book.freeze() == {}


@pytest.mark.parametrize("claims", [(), ("unknown",)])
def test_pods_without_known_claims_change_nothing(claims: tuple[str, ...]) -> None:
    book = NeedsBook()
    assert not book.pod_seen(claimant("a", *claims), lambda key: None)
    assert book.freeze() == {}
