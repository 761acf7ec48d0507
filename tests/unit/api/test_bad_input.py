"""Bad input is a 4xx naming the field, never a 500."""

from __future__ import annotations

import pytest

from tests.builders import pod_json
from tests.unit.conftest import Harness, make_harness


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "(body)"),
        (b"[]", "(body)"),
        (b'{"NodeNames": ["a"]}', "Pod"),
        (b'{"Pod": {"metadata": {}}, "NodeNames": ["a"]}', "Pod.metadata.name"),
        (b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": "a"}', "NodeNames"),
        (
            b'{"Pod": {"metadata": {"name": "p"}, "spec": {"priority": "high"}}, "NodeNames": []}',
            "Pod.spec.priority",
        ),
    ],
)
def test_malformed_filter_requests_are_400_naming_the_field(
    harness: Harness, body: bytes, field: str
) -> None:
    for verb in ("filter", "prioritize"):
        reply = harness.client.post(f"/scheduler/{verb}", content=body)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"].startswith(field), reply.json()


@pytest.mark.parametrize("quantity", ["-1", "lots", "1e400", "NaN"])
def test_bad_quantities_are_400_naming_the_resource(harness: Harness, quantity: str) -> None:
    bad = pod_json("p", 1)
    bad["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = quantity
    reply = harness.client.post("/scheduler/filter", json={"Pod": bad, "NodeNames": ["a"]})
    assert reply.status_code == 400
    assert "nvidia.com/gpu" in reply.json()["error"]


def test_neither_node_names_nor_nodes_is_400(harness: Harness) -> None:
    reply = harness.client.post("/scheduler/filter", json={"Pod": pod_json("p")})
    assert reply.status_code == 400
    assert "NodeNames" in reply.json()["error"]


def test_bad_node_object_in_full_mode_names_its_index(harness: Harness) -> None:
    body = {"Pod": pod_json("p"), "Nodes": {"items": [{"metadata": {"name": "a"}}, {"spec": {}}]}}
    reply = harness.client.post("/scheduler/filter", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("Nodes.items.1.metadata")


def test_bind_with_missing_fields_is_400(harness: Harness) -> None:
    reply = harness.client.post("/scheduler/bind", json={"PodName": "p"})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("PodNamespace")


def test_body_over_the_limit_is_413() -> None:
    h = make_harness(max_body=1024)
    reply = h.client.post("/scheduler/filter", content=b"x" * 4096)
    assert reply.status_code == 413
    assert "limit" in reply.json()["error"]


def test_unknown_route_is_404_json(harness: Harness) -> None:
    reply = harness.client.post("/scheduler/nope", json={})
    assert reply.status_code == 404


def test_debug_endpoints_are_off_by_default(harness: Harness) -> None:
    assert harness.client.get("/debug/scores", params={"pod": "a/b"}).status_code == 404


def test_verbs_answer_only_post(harness: Harness) -> None:
    response = harness.client.get("/scheduler/filter")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "POST" in response.json()["error"]


def test_an_unexpected_error_is_a_json_500_and_the_service_goes_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("bug")

    body = {"Pod": pod_json("p", 1), "NodeNames": ["a"]}
    monkeypatch.setattr(harness.extender, "filter", broken)
    reply = harness.client.post("/scheduler/filter", json=body)
    assert reply.status_code == 500
    assert "internal error" in reply.json()["error"]
    monkeypatch.undo()
    assert harness.client.post("/scheduler/filter", json=body).status_code == 200


@pytest.mark.parametrize(
    ("claims", "field"),
    [
        ([{"resourceClaimName": "c"}], "Pod.spec.resourceClaims.0.name"),
        ("gpu", "Pod.spec.resourceClaims"),
        ([{"name": "gpu", "resourceClaimName": 7}], "Pod.spec.resourceClaims.0.resourceClaimName"),
    ],
)
def test_malformed_resource_claims_are_400_naming_the_field(
    harness: Harness, claims: object, field: str
) -> None:
    bad = pod_json("p", 0)
    bad["spec"]["resourceClaims"] = claims
    reply = harness.client.post("/scheduler/filter", json={"Pod": bad, "NodeNames": ["a"]})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith(field), reply.json()
