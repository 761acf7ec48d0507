"""Hostile request shapes: huge, deep, duplicated, unicode, empty. Never a 5xx."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from tests.builders import node, pod_json
from tests.support.figures import record
from tests.unit.conftest import Harness, make_harness


@pytest.fixture(scope="module")
def big() -> Harness:
    h = make_harness()
    with h.cluster.locked():
        for i in range(2000):
            h.cluster.state.upsert_node(node(f"n{i}", 8))
        h.cluster.publish_locked()
    return h


def test_100k_node_names_with_duplicates_and_unknowns(big: Harness) -> None:
    names = [f"n{i % 3000}" for i in range(100_000)]  # 2000 known, 1000 unknown, many duplicates
    tracemalloc.start()
    reply = big.client.post("/scheduler/filter", json={"Pod": pod_json("p", 1), "NodeNames": names})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert reply.status_code == 200
    body = reply.json()
    assert len(body["NodeNames"]) == 2000
    assert len(body["FailedNodes"]) == 1000
    # 100 000 names are ~1 MB of JSON; the peak stays within a small multiple.
    record("hostile shapes", "peak memory of a 100 000-name filter (MiB)", round(peak / 2**20, 1))
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    scores = big.client.post(
        "/scheduler/prioritize", json={"Pod": pod_json("p", 1), "NodeNames": names}
    ).json()
    assert len(scores) == 3000  # each distinct name once


@pytest.mark.parametrize("depth", [64, 10_000, 200_000])
def test_deeply_nested_json_is_rejected_cleanly(big: Harness, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = (
        '{"Pod": {"metadata": {"name": "p"}, "spec": {"containers": '
        + nested
        + '}}, "NodeNames": []}'
    )
    reply = big.client.post("/scheduler/filter", content=body)
    assert reply.status_code == 400
    assert reply.json()["error"]


@pytest.mark.parametrize("name", ["", "ノード", "a" * 10_000, "\u0000", "🙂/../etc"])
def test_odd_node_names_are_reported_not_crashing(big: Harness, name: str) -> None:
    reply = big.client.post(
        "/scheduler/filter", json={"Pod": pod_json("p", 1), "NodeNames": [name, "n1"]}
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["NodeNames"] == ["n1"]
    assert name in body["FailedNodes"]


def test_huge_body_is_413_before_it_is_parsed() -> None:
    h = make_harness(max_body=1 * 2**20)
    names = ["x" * 100] * 20_000  # ~2 MB
    reply = h.client.post(
        "/scheduler/filter", content=json.dumps({"Pod": pod_json("p"), "NodeNames": names})
    )
    assert reply.status_code == 413


@pytest.mark.parametrize(
    "pod",
    [
        {"metadata": {"name": "p"}},  # no spec, no status
        {"metadata": {"name": "p"}, "spec": {"containers": [{}]}},  # container with nothing
        {"metadata": {"name": "p"}, "spec": {"containers": [{"resources": {"requests": {}}}]}},
        {"metadata": {"name": "p", "labels": {}}, "spec": {"priority": None}},
    ],
)
def test_pods_with_missing_fields_are_served(big: Harness, pod: dict[str, object]) -> None:
    reply = big.client.post("/scheduler/filter", json={"Pod": pod, "NodeNames": ["n1"]})
    assert reply.status_code == 200
    assert reply.json()["NodeNames"] == ["n1"]


@pytest.mark.parametrize("amount", ["-1", "-0.5", "1e30", "99999999999999999999999"])
def test_negative_or_absurd_quantities(big: Harness, amount: str) -> None:
    pod = pod_json("p", 1)
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = amount
    reply = big.client.post("/scheduler/filter", json={"Pod": pod, "NodeNames": ["n1"]})
    if reply.status_code == 200:  # a huge but valid quantity: the node cannot hold it
        assert reply.json()["FailedAndUnresolvableNodes"]["n1"]
    else:
        assert reply.status_code == 400
        assert "cpu" in reply.json()["error"]


def test_nodes_with_missing_fields_in_full_mode(big: Harness) -> None:
    nodes = [{"metadata": {"name": "bare"}}, {"metadata": {"name": "n1"}, "status": {}}]
    reply = big.client.post(
        "/scheduler/filter", json={"Pod": pod_json("p", 0), "Nodes": {"items": nodes}}
    )
    assert reply.status_code == 200
    # A bare node has no resources at all: the pod's cpu and memory requests cannot fit.
    assert "bare" in reply.json()["FailedAndUnresolvableNodes"]
