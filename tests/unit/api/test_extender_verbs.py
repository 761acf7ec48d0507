"""The extender verbs through the ASGI app: exact wire keys, both node modes, bind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pytest

from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.rules import FreeAmounts
from tests.builders import node, node_json, pod, pod_json
from tests.unit.conftest import Harness, make_harness

FILTER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def add_nodes(h: Harness, *specs: tuple[str, int]) -> None:
    with h.cluster.locked():
        for name, gpus in specs:
            h.cluster.state.upsert_node(node(name, gpus))
        h.cluster.publish_locked()


def add_pod(h: Harness, p: Pod) -> None:
    with h.cluster.locked():
        h.cluster.state.upsert_pod(p)
        h.cluster.publish_locked()


def test_filter_node_cache_mode_replies_with_exact_keys_and_node_names(harness: Harness) -> None:
    add_nodes(harness, ("a", 8), ("b", 2), ("c", 8))
    add_pod(harness, pod("busy", 7, node="c"))
    reply = harness.client.post(
        "/scheduler/filter",
        json={"Pod": pod_json("p", 4), "Nodes": None, "NodeNames": ["a", "b", "c", "ghost"]},
    )
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == FILTER_KEYS
    assert body["NodeNames"] == ["a"]
    assert body["Nodes"] is None
    assert body["Error"] == ""
    # b can never hold 4 GPUs: preemption cannot help, so it is unresolvable.
    assert set(body["FailedAndUnresolvableNodes"]) == {"b"}
    assert "total capacity" in body["FailedAndUnresolvableNodes"]["b"]
    assert set(body["FailedNodes"]) == {"c", "ghost"}
    assert body["FailedNodes"]["c"] == "Insufficient nvidia.com/gpu (requests 4)"
    assert "not in the extender's cache" in body["FailedNodes"]["ghost"]


def test_filter_never_replies_null_node_names_in_cache_mode(harness: Harness) -> None:
    reply = harness.client.post(
        "/scheduler/filter", json={"Pod": pod_json("p", 1), "NodeNames": []}
    )
    assert reply.json()["NodeNames"] == []


def test_filter_full_node_mode_echoes_node_objects(harness: Harness) -> None:
    add_nodes(harness, ("a", 8))
    add_pod(harness, pod("busy", 8, node="a"))
    sent = [node_json("a", 8), node_json("fresh", 4)]
    reply = harness.client.post(
        "/scheduler/filter", json={"Pod": pod_json("p", 2), "Nodes": {"items": sent}}
    )
    body = reply.json()
    assert body["NodeNames"] is None
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == ["fresh"]
    assert body["Nodes"]["items"][0] == sent[1]
    assert set(body["FailedNodes"]) == {"a"}


def test_prioritize_replies_a_bare_array_of_host_scores_within_0_to_10() -> None:
    h = make_harness(popularity={"hot": 100.0, "cold": 1.0})
    add_nodes(h, ("a", 8), ("b", 8), ("c", 8))
    add_pod(h, pod("hot-0", 1, agent="hot", node="a"))
    add_pod(h, pod("hot-1", 1, agent="hot", node="b"))
    reply = h.client.post(
        "/scheduler/prioritize",
        json={"Pod": pod_json("hot-2", 1, agent="hot"), "NodeNames": ["a", "b", "c"]},
    )
    scores = reply.json()
    assert isinstance(scores, list)
    assert all(set(s) == {"Host", "Score"} for s in scores)
    by_host = {s["Host"]: s["Score"] for s in scores}
    assert all(0 <= v <= 10 for v in by_host.values())
    # The hot agent's third replica belongs on the node without one.
    assert by_host["c"] > by_host["a"]
    assert by_host["c"] > by_host["b"]


def test_prioritize_after_filter_answers_as_a_prioritize_alone() -> None:
    # The filter's rows are reused for the nodes it passed; asked about other
    # names, or after a node came, prioritize looks them up itself.
    def scores_after(filter_names: list[str], names: list[str], new_node: bool) -> object:
        h = make_harness(popularity={"hot": 100.0})
        add_nodes(h, ("a", 8), ("b", 8), ("c", 8), ("d", 1))
        add_pod(h, pod("hot-0", 1, agent="hot", node="a"))
        add_pod(h, pod("full", 1, node="d"))
        add_pod(h, pod("other", 7, node="c"))
        the_pod = pod_json("hot-1", 1, agent="hot")
        if filter_names:
            body = {"Pod": the_pod, "NodeNames": filter_names}
            assert h.client.post("/scheduler/filter", json=body).json()["NodeNames"]
        if new_node:
            add_nodes(h, ("e", 8))
        body = {"Pod": the_pod, "NodeNames": names}
        return h.client.post("/scheduler/prioritize", json=body).json()

    passed = ["c", "a", "b"]
    alone = scores_after([], passed, new_node=False)
    assert [s["Host"] for s in alone] == passed  # type: ignore[union-attr]
    assert len({s["Score"] for s in alone}) == 3  # type: ignore[union-attr]
    assert scores_after(["c", "a", "d", "b"], passed, new_node=False) == alone
    assert scores_after(["c", "a", "b"], ["a", "ghost"], new_node=False) == scores_after(
        [], ["a", "ghost"], new_node=False
    )
    with_e = scores_after([], [*passed, "e"], new_node=True)
    assert scores_after(["c", "a", "b"], [*passed, "e"], new_node=True) == with_e


class _Closes:
    """A filter rule closing the named nodes to every pod."""

    reason = "reserved"

    def __init__(self, *nodes: str) -> None:
        self.nodes = nodes

    def __bool__(self) -> bool:
        return True

    def blocked(self, pod: Pod, nodes: Iterable[str], free: FreeAmounts) -> dict[str, str]:
        return {n: "closed" for n in nodes if n in self.nodes}


def test_prioritize_after_a_filter_that_a_rule_narrowed_scores_the_right_nodes() -> None:
    h = make_harness(popularity={"hot": 100.0})
    add_nodes(h, ("a", 8), ("b", 8), ("c", 8))
    add_pod(h, pod("hot-0", 1, agent="hot", node="a"))
    add_pod(h, pod("other", 7, node="c"))
    the_pod = pod_json("hot-1", 1, agent="hot")
    alone = h.client.post(
        "/scheduler/prioritize", json={"Pod": the_pod, "NodeNames": ["a", "c"]}
    ).json()
    h.cluster.publish_rule("test", _Closes("b"))
    filtered = h.client.post(
        "/scheduler/filter", json={"Pod": the_pod, "NodeNames": ["a", "b", "c"]}
    ).json()
    assert filtered["NodeNames"] == ["a", "c"]
    after = h.client.post(
        "/scheduler/prioritize", json={"Pod": the_pod, "NodeNames": ["a", "c"]}
    ).json()
    assert after == alone
    assert len({s["Score"] for s in after}) == 2


def test_pod_without_agent_label_is_scored_not_rejected(harness: Harness) -> None:
    add_nodes(harness, ("a", 8), ("b", 8))
    body = {"Pod": pod_json("anon", 1), "NodeNames": ["a", "b"]}
    assert harness.client.post("/scheduler/filter", json=body).json()["NodeNames"] == ["a", "b"]
    scores = harness.client.post("/scheduler/prioritize", json=body).json()
    assert len({s["Score"] for s in scores}) == 1


def test_bind_creates_binding_and_assumes_at_once(harness: Harness) -> None:
    add_nodes(harness, ("a", 2))
    p = pod("p", 2)
    add_pod(harness, p)
    reply = harness.client.post(
        "/scheduler/bind",
        json={"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"},
    )
    assert reply.json() == {"Error": ""}
    assert harness.binder.bound == {p.uid: "a"}
    # The next filter sees the GPUs taken before any watch event arrives.
    body = {"Pod": pod_json("q", 1), "NodeNames": ["a"]}
    assert harness.client.post("/scheduler/filter", json=body).json()["NodeNames"] == []


def test_bind_is_idempotent_and_checks_the_uid(harness: Harness) -> None:
    add_nodes(harness, ("a", 2))
    p = pod("p", 1, node="a")
    add_pod(harness, p)
    args = {"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
    assert harness.client.post("/scheduler/bind", json=args).json() == {"Error": ""}
    assert harness.binder.calls == 0
    harness.binder.pods["default/p"] = p
    stale = {**args, "PodUID": "an-older-pod"}
    error = harness.client.post("/scheduler/bind", json=stale).json()["Error"]
    assert "recreated" in error


def test_bind_of_unknown_pod_reports_an_error(harness: Harness) -> None:
    args = {"PodName": "nope", "PodNamespace": "default", "PodUID": "u", "Node": "a"}
    reply = harness.client.post("/scheduler/bind", json=args)
    assert reply.status_code == 200
    assert "not found" in reply.json()["Error"]


def test_concurrent_binds_never_overallocate_a_node(harness: Harness) -> None:
    add_nodes(harness, ("a", 8))
    pods = [pod(f"p{i}", 1) for i in range(40)]
    for p in pods:
        add_pod(harness, p)
    barrier = threading.Barrier(8)

    def bind(p: Pod) -> str:
        barrier.wait() if p.name in {f"p{i}" for i in range(8)} else None
        args = {"PodName": p.name, "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
        return str(harness.client.post("/scheduler/bind", json=args).json()["Error"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        errors = list(pool.map(bind, pods))
    assert sum(1 for e in errors if e == "") == 8
    assert len(harness.binder.bound) == 8
    assert all("Insufficient nvidia.com/gpu" in e for e in errors if e)
    assert harness.cluster.snapshot().nodes["a"].free("nvidia.com/gpu") == 0


def test_failed_bind_releases_the_assumed_capacity(harness: Harness) -> None:
    add_nodes(harness, ("a", 1))
    p = pod("p", 1)
    add_pod(harness, p)
    harness.binder.fail_with = RuntimeError("apiserver down")
    args = {"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
    assert "apiserver down" in harness.client.post("/scheduler/bind", json=args).json()["Error"]
    assert harness.cluster.snapshot().nodes["a"].free("nvidia.com/gpu") == 1


def test_debug_scores_explains_each_policy_per_node() -> None:
    h = make_harness(popularity={"hot": 50.0}, debug=True)
    add_nodes(h, ("a", 8), ("b", 8))
    add_pod(h, pod("hot-0", 1, agent="hot", node="a"))
    add_pod(h, pod("hot-1", 1, agent="hot"))
    reply = h.client.get("/debug/scores", params={"pod": "default/hot-1"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["agent"] == "hot"
    assert [s["node"] for s in body["scores"]] == ["b", "a"]
    assert set(body["scores"][0]["contributions"]) == {"gpu_binpack", "agent_spread", "popularity"}
    assert h.client.get("/debug/scores", params={"pod": "nope"}).status_code == 400
    assert h.client.get("/debug/scores", params={"pod": "default/ghost"}).status_code == 404


def test_assumed_pods_expire_through_the_shared_cluster(harness: Harness) -> None:
    add_nodes(harness, ("a", 1))
    p = pod("p", 1)
    add_pod(harness, p)
    args = {"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
    assert harness.client.post("/scheduler/bind", json=args).json() == {"Error": ""}
    assert harness.cluster.snapshot().nodes["a"].free("nvidia.com/gpu") == 0
    harness.clock.now += 29
    assert harness.cluster.expire() == []
    harness.clock.now += 2
    assert [a.pod.uid for a in harness.cluster.expire()] == [p.uid]
    assert harness.cluster.snapshot().nodes["a"].free("nvidia.com/gpu") == 1


def test_second_bind_of_a_pod_to_another_node_is_refused_and_keeps_the_first(
    harness: Harness,
) -> None:
    add_nodes(harness, ("a", 1), ("b", 1))
    p = pod("p", 1)
    add_pod(harness, p)
    first = {"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
    assert harness.client.post("/scheduler/bind", json=first).json() == {"Error": ""}
    second = {**first, "Node": "b"}
    assert (
        "already being bound to a"
        in harness.client.post("/scheduler/bind", json=second).json()["Error"]
    )
    nodes = harness.cluster.snapshot().nodes
    assert nodes["a"].free("nvidia.com/gpu") == 0
    assert nodes["b"].free("nvidia.com/gpu") == 1
    assert harness.binder.calls == 1


def test_debug_logging_explains_each_policy(caplog: pytest.LogCaptureFixture) -> None:
    h = make_harness(popularity={"hot": 50.0})
    add_nodes(h, ("a", 8), ("b", 8))
    with caplog.at_level(logging.DEBUG, logger="scheduler_extender.service.extender"):
        h.client.post(
            "/scheduler/prioritize",
            json={"Pod": pod_json("hot-1", 1, agent="hot"), "NodeNames": ["a", "b"]},
        )
    records = [r for r in caplog.records if r.getMessage().startswith("score default/hot-1")]
    assert len(records) == 2
    assert set(records[0].policies) == {"gpu_binpack", "agent_spread", "popularity"}  # type: ignore[attr-defined]


def test_a_stale_cache_refuses_to_filter_or_bind(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_nodes(harness, ("a", 8))
    p = pod("p", 1)
    add_pod(harness, p)
    monkeypatch.setattr(harness.cluster, "staleness", lambda: 31.0)
    body = harness.client.post(
        "/scheduler/filter", json={"Pod": pod_json("q", 1), "NodeNames": ["a"]}
    ).json()
    assert "cut off from the API server for 31 s" in body["Error"]
    args = {"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
    assert "cut off" in harness.client.post("/scheduler/bind", json=args).json()["Error"]
    assert harness.binder.calls == 0
    monkeypatch.setattr(harness.cluster, "staleness", lambda: 29.0)
    assert harness.client.post("/scheduler/bind", json=args).json() == {"Error": ""}


def test_bind_refuses_a_pod_of_another_scheduler(harness: Harness) -> None:
    add_nodes(harness, ("a", 2))
    p = pod("p", 1, scheduler="some-other-scheduler")
    add_pod(harness, p)
    args = {"PodName": "p", "PodNamespace": "default", "PodUID": p.uid, "Node": "a"}
    error = harness.client.post("/scheduler/bind", json=args).json()["Error"]
    assert "belongs to scheduler 'some-other-scheduler'" in error
    assert harness.binder.calls == 0
    assert harness.cluster.placement(p.uid) is None  # nothing assumed either
