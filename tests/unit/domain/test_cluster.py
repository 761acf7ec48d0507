"""Cluster accounting: watch events, assume / confirm / expire, snapshots."""

from __future__ import annotations

import dataclasses

from scheduler_extender.domain.cluster import ClusterState
from tests.builders import GPU, node, pod


def gpus_free(state: ClusterState, name: str) -> int:
    return state.snapshot().nodes[name].free(GPU)


def test_bound_pods_count_against_their_node_and_terminal_ones_do_not() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    running = pod("r", 3, node="a", phase="Running")
    state.upsert_pod(running)
    state.upsert_pod(pod("done", 2, node="a", phase="Succeeded"))
    state.upsert_pod(pod("pending", 4))
    assert gpus_free(state, "a") == 5
    state.upsert_pod(dataclasses.replace(running, phase="Failed"))
    assert gpus_free(state, "a") == 8


def test_pods_seen_before_their_node_are_accounted_when_it_appears() -> None:
    state = ClusterState()
    state.upsert_pod(pod("early", 2, node="late"))
    state.upsert_node(node("late", 4))
    assert gpus_free(state, "late") == 2


def test_assumed_pod_counts_until_the_watch_confirms_it() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    p = pod("p", 2)
    state.upsert_pod(p)
    state.assume(p, "a", deadline=10.0)
    assert gpus_free(state, "a") == 6
    assert state.assumed_count == 1
    state.upsert_pod(dataclasses.replace(p, node_name="a"))  # the watch confirms
    assert state.assumed_count == 0
    assert gpus_free(state, "a") == 6  # counted once, not twice
    assert state.expire(now=100.0) == []
    assert gpus_free(state, "a") == 6


def test_unconfirmed_assumption_expires_and_frees_capacity() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    p = pod("p", 8)
    state.assume(p, "a", deadline=10.0)
    assert gpus_free(state, "a") == 0
    assert state.expire(now=9.9) == []
    expired = state.expire(now=10.0)
    assert [a.pod.uid for a in expired] == [p.uid]
    assert gpus_free(state, "a") == 8


def test_watch_binding_elsewhere_overrides_the_assumption() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    state.upsert_node(node("b", 8))
    p = pod("p", 4)
    state.assume(p, "a", deadline=10.0)
    state.upsert_pod(dataclasses.replace(p, node_name="b"))
    assert gpus_free(state, "a") == 8
    assert gpus_free(state, "b") == 4


def test_deleting_an_assumed_pod_frees_its_node() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    p = pod("p", 4)
    state.assume(p, "a", deadline=10.0)
    state.delete_pod(p.uid)
    assert gpus_free(state, "a") == 8
    assert state.assumed_count == 0


def test_relist_replaces_nodes_and_pods() -> None:
    state = ClusterState()
    state.replace_nodes([node("a"), node("b")])
    old = pod("old", 1, node="a")
    state.replace_pods([old])
    state.replace_nodes([node("a")])
    state.replace_pods([pod("new", 2, node="a")])
    snap = state.snapshot()
    assert set(snap.nodes) == {"a"}
    assert snap.nodes["a"].free(GPU) == 6
    assert state.pod(old.uid) is None


def test_agent_replicas_and_per_node_agents() -> None:
    state = ClusterState()
    state.upsert_node(node("a"))
    state.upsert_pod(pod("x0", 1, agent="x", node="a"))
    state.upsert_pod(pod("x1", 1, agent="x", node="a"))
    x2 = pod("x2", 1, agent="x")
    state.upsert_pod(x2)
    snap = state.snapshot()
    assert snap.agent_replicas["x"] == 3
    assert snap.nodes["a"].agents == {"x": 2}
    state.delete_pod(x2.uid)
    assert state.snapshot().agent_replicas["x"] == 2


def test_snapshots_are_immutable_and_reused_while_nothing_changes() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    first = state.snapshot()
    assert state.snapshot() is first
    state.upsert_pod(pod("p", 8, node="a"))
    second = state.snapshot()
    assert second is not first
    assert first.nodes["a"].free(GPU) == 8  # the old view did not change
    assert second.nodes["a"].free(GPU) == 0


def test_find_pod_by_namespace_and_name() -> None:
    state = ClusterState()
    p = pod("p", namespace="team")
    state.upsert_pod(p)
    assert state.find_pod("team", "p") == p
    assert state.find_pod("default", "p") is None
    state.delete_pod(p.uid)
    assert state.find_pod("team", "p") is None


def test_incremental_columns_agree_with_a_rebuild_after_random_churn() -> None:
    import random

    import numpy as np

    from scheduler_extender.domain.cluster import columns_of

    rng = random.Random(3)
    state = ClusterState()
    live_pods: list[str] = []
    for step in range(600):
        action = rng.random()
        if action < 0.15:
            state.upsert_node(node(f"n{rng.randrange(30)}", rng.choice((1, 4, 8))))
        elif action < 0.2:
            state.delete_node(f"n{rng.randrange(30)}")
        elif action < 0.7 or not live_pods:
            p = pod(
                f"p{step}",
                rng.choice((0, 1, 2)),
                node=f"n{rng.randrange(30)}",
                agent=rng.choice(("a", "b", None)),
            )
            state.upsert_pod(p)
            live_pods.append(p.uid)
        else:
            state.delete_pod(live_pods.pop(rng.randrange(len(live_pods))))
        if step % 50 == 0:
            snap = state.snapshot()
            fresh = columns_of(snap.nodes)
            assert snap.columns.names_of(snap.columns.rows_of(list(snap.nodes))) == list(snap.nodes)
            assert sum(n is not None for n in snap.columns.names) == len(snap.nodes)
            for name in snap.nodes:
                rows = snap.columns.rows_of([name])
                other = fresh.rows_of([name])
                for resource in ("cpu", "memory", GPU, "pods"):
                    assert (
                        snap.columns.free_of(resource, rows)[0] == fresh.free_of(resource, other)[0]
                    )
                    assert (
                        snap.columns.allocatable_of(resource, rows)[0]
                        == fresh.allocatable_of(resource, other)[0]
                    )
                for agent in ("a", "b"):
                    assert np.array_equal(
                        snap.columns.agent_counts(agent, rows), fresh.agent_counts(agent, other)
                    )
                    assert snap.columns.agent_counts(agent, rows)[0] == snap.nodes[name].agents.get(
                        agent, 0
                    )


def test_events_that_change_nothing_we_account_keep_the_snapshot() -> None:
    """kwok heartbeats and pod status updates must not cost a snapshot rebuild."""
    state = ClusterState()
    state.upsert_node(node("a", 8))
    running = pod("r", 3, node="a", phase="Running")
    state.upsert_pod(running)
    before = state.snapshot()
    state.upsert_node(node("a", 8))
    state.upsert_pod(dataclasses.replace(running))
    assert state.snapshot() is before
    state.upsert_pod(dataclasses.replace(running, phase="Succeeded"))
    assert state.snapshot() is not before
    assert gpus_free(state, "a") == 8


def test_new_nodes_get_rows_in_name_order_whatever_the_event_order() -> None:
    # Scores break ties by row: the same cluster must give the same rows in
    # every process (a set's order would depend on the string hash seed).
    names = [f"node-{i:02d}" for i in range(20)]
    state = ClusterState()
    for name in reversed(names):
        state.upsert_node(node(name, 8))
    rows = state.snapshot().columns.rows
    assert sorted(rows, key=rows.__getitem__) == names


def nominated_uids(state: ClusterState) -> dict[str, set[str]]:
    return {n: {p.uid for p in pods} for n, pods in state.snapshot().nominated.items()}


def test_nominated_pods_are_listed_under_their_node_until_bound() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    p = dataclasses.replace(pod("p", 4, priority=10), nominated_node_name="a")
    state.upsert_pod(p)
    assert nominated_uids(state) == {"a": {p.uid}}
    entry = state.snapshot().nominated["a"][0]
    assert (entry.priority, entry.requests) == (10, p.requests)
    assert gpus_free(state, "a") == 8  # held for it by the filter, not accounted
    state.upsert_pod(dataclasses.replace(p, node_name="a"))
    assert nominated_uids(state) == {}
    assert gpus_free(state, "a") == 4


def test_a_nomination_moves_and_ends_with_the_pod() -> None:
    state = ClusterState()
    p = dataclasses.replace(pod("p", 1), nominated_node_name="a")
    state.upsert_pod(p)
    state.upsert_pod(dataclasses.replace(p, nominated_node_name="b"))
    assert nominated_uids(state) == {"b": {p.uid}}
    state.upsert_pod(dataclasses.replace(p, nominated_node_name="b", phase="Failed"))
    assert nominated_uids(state) == {}
    q = dataclasses.replace(pod("q", 1), nominated_node_name="b")
    state.upsert_pod(q)
    state.delete_pod(q.uid)
    assert nominated_uids(state) == {}


def test_a_pod_we_bound_is_not_nominated_until_the_bind_fails() -> None:
    state = ClusterState()
    state.upsert_node(node("a", 8))
    state.upsert_node(node("b", 8))
    p = dataclasses.replace(pod("p", 2), nominated_node_name="a")
    state.upsert_pod(p)
    state.assume(p, "b", deadline=10.0)
    assert nominated_uids(state) == {}  # counted once, on b
    state.forget(p.uid)
    assert nominated_uids(state) == {"a": {p.uid}}


def test_snapshots_rebuild_only_the_nodes_whose_nominations_changed() -> None:
    state = ClusterState()
    first = dataclasses.replace(pod("p", 1), nominated_node_name="a")
    state.upsert_pod(first)
    before = state.snapshot()
    assert state.snapshot() is before
    state.upsert_pod(dataclasses.replace(pod("q", 1), nominated_node_name="b"))
    after = state.snapshot()
    assert after.nominated["a"] is before.nominated["a"]  # untouched node: same tuple
    assert set(after.nominated) == {"a", "b"}
    assert set(before.nominated) == {"a"}  # the old view did not change
