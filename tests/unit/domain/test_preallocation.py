"""Pre-allocation: pending replicas placed virtually, heaviest first."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.columns import Columns, IntArray
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.preallocation import (
    EMPTY_PLAN,
    MAX_PLANNED,
    Pending,
    Plan,
    pending_replicas,
    plan,
)
from scheduler_extender.domain.scoring import popularity as popularity_policy
from scheduler_extender.domain.scoring.policy import ScoringContext
from scheduler_extender.domain.scoring.popularity import PopularityAware
from tests.builders import AGENT_LABEL, GPU, node, pod, pod_json


def cluster(gpus: dict[str, int], pods: list[tuple[str, str | None]]) -> ClusterState:
    """Nodes with their GPUs; one-GPU pods as (agent, node or None for pending)."""
    state = ClusterState()
    for name, count in gpus.items():
        state.upsert_node(node(name, count))
    for i, (agent, where) in enumerate(pods):
        state.upsert_pod(pod(f"{agent}-{i}", 1, node=where, agent=agent))
    return state


def bind(state: ClusterState, name: str, node_name: str) -> None:
    """The watch reports the pending pod ``name`` bound to ``node_name``."""
    pending = state.find_pod("default", name)
    assert pending is not None
    state.upsert_pod(dataclasses.replace(pending, node_name=node_name))


def runs(replicas: list[tuple[float, str]]) -> list[Pending]:
    """Pending replicas one by one, as the per-agent entries the plan takes."""
    out: list[Pending] = []
    for load, agent in replicas:
        if out and out[-1][:2] == (load, agent):
            out[-1] = (load, agent, out[-1][2] + 1)
        else:
            out.append((load, agent, 1))
    return out


def on(columns: Columns, *names: str) -> IntArray:
    return columns.rows_of(names)


def test_pending_replicas_are_the_unplaced_ones_heaviest_first() -> None:
    state = cluster(
        {"a": 8},
        [("hot", "a"), ("hot", None), ("hot", None), ("cold", None), ("unknown", None)],
    )
    snapshot = state.snapshot()
    rates = {"hot": 30.0, "cold": 2.0, "idle": 0.0}
    assert pending_replicas(snapshot.columns, rates, snapshot.agent_replicas) == [
        (10.0, "hot", 2),
        (2.0, "cold", 1),
    ]


def test_pending_replicas_are_capped_at_the_heaviest() -> None:
    state = cluster({"a": 8}, [("cold", None)] * (MAX_PLANNED + 5) + [("hot", None)])
    snapshot = state.snapshot()
    rates = {"hot": 100.0, "cold": float(MAX_PLANNED + 5)}
    pending = pending_replicas(snapshot.columns, rates, snapshot.agent_replicas)
    assert sum(count for _, _, count in pending) == MAX_PLANNED
    assert pending[0] == (100.0, "hot", 1)


def test_the_plan_puts_the_heaviest_first_on_the_least_loaded_nodes() -> None:
    # Greedy in the order 1, 1, 2 would end at 3 on one node; heaviest first gives 2 and 2.
    state = cluster({"a": 4, "b": 4}, [])
    columns = state.snapshot().columns
    planned = plan(
        columns, np.zeros(columns.size), runs([(2.0, "h"), (1.0, "l1"), (1.0, "l2")]), GPU
    )
    assert sorted(planned.total[on(columns, "a", "b")].tolist()) == [2.0, 2.0]
    (h_row,), _ = planned.agents["h"]
    assert planned.agents["l1"][0][0] != h_row
    assert planned.agents["l2"][0][0] != h_row


def test_the_plan_starts_from_the_placed_load_per_gpu_and_respects_free_gpus() -> None:
    # a: 2 GPUs, both in use; b: 8 GPUs with load 16 (2 per GPU); c: 4 GPUs with load 4 (1 per GPU).
    state = cluster({"a": 2, "b": 8, "c": 4}, [("x", "a"), ("x", "a"), ("y", "b"), ("z", "c")])
    columns = state.snapshot().columns
    loads = np.zeros(columns.size)
    loads[[columns.rows["b"], columns.rows["c"]]] = [16.0, 4.0]
    planned = plan(columns, loads, runs([(4.0, "h"), (4.0, "h")]), GPU)
    rows, load = planned.agents["h"]
    assert load == 4.0
    # First to c (1 per GPU -> 2), then b (2 per GPU) and c (2) tie: rows break it.
    assert columns.rows["a"] not in rows.tolist()
    assert rows[0] == columns.rows["c"]
    assert planned.total[columns.rows["a"]] == 0.0


def test_a_full_node_set_plans_nothing_and_leaves_no_reservation() -> None:
    state = cluster({"a": 1}, [("x", "a")])
    columns = state.snapshot().columns
    planned = plan(columns, np.zeros(columns.size), runs([(1.0, "h")]), GPU)
    assert not planned.reserved(columns.size, except_agent="other").any()
    assert plan(columns, np.zeros(columns.size), runs([]), GPU) is EMPTY_PLAN
    assert (
        plan(columns, np.zeros(columns.size), runs([(1.0, "h")]), "example.com/tpu") is EMPTY_PLAN
    )
    assert EMPTY_PLAN.reserved(3, except_agent="h").tolist() == [0.0, 0.0, 0.0]


def test_reserved_leaves_out_the_agent_being_placed() -> None:
    state = cluster({"a": 4, "b": 4}, [])
    columns = state.snapshot().columns
    planned = plan(columns, np.zeros(columns.size), runs([(3.0, "h"), (1.0, "mine")]), GPU)
    both = on(columns, "a", "b")
    assert sorted(planned.reserved(columns.size, except_agent="mine")[both].tolist()) == [0.0, 3.0]
    assert sorted(planned.reserved(columns.size, except_agent="h")[both].tolist()) == [0.0, 1.0]
    # A fresh array each time: the plan itself is never changed.
    assert sorted(planned.total[both].tolist()) == [1.0, 3.0]


def popularity_scores(state: ClusterState, agent: str, rates: dict[str, float]) -> list[float]:
    snapshot = state.snapshot()
    names = sorted(snapshot.nodes)
    ctx = ScoringContext(snapshot, Popularity(rates), GPU)
    new = pod("new", 1, agent=agent)
    return PopularityAware().score(new, snapshot.columns.rows_of(names), ctx).tolist()


def test_a_light_replica_keeps_off_the_node_a_pending_heavy_replica_needs() -> None:
    # Three one-GPU nodes; the light replica is being placed (it is pending too).
    rates = {"heavy": 9.0, "light": 1.0}
    alone = popularity_scores(cluster({"a": 1, "b": 1, "c": 1}, [("light", None)]), "light", rates)
    assert alone[0] == alone[1] == alone[2]  # nothing else to make room for

    state = cluster({"a": 1, "b": 1, "c": 1}, [("light", None), ("heavy", None)])
    a, b, c = popularity_scores(state, "light", rates)
    # The heavy replica is planned on a (the first of three empty nodes).
    assert b == c == pytest.approx(1.0)
    assert a < b


def test_the_agents_own_pending_replicas_reserve_nothing() -> None:
    state = cluster({"a": 1, "b": 1}, [("light", None), ("light", None)])
    a, b = popularity_scores(state, "light", {"light": 4.0})
    assert a == b


def placed_plan(state: ClusterState, pending: list[tuple[float, str]]) -> Plan:
    columns = state.snapshot().columns
    return plan(columns, np.zeros(columns.size), runs(pending), GPU)


def test_a_plan_is_kept_while_replicas_land_where_it_put_them() -> None:
    state = cluster({"a": 4, "b": 4}, [("h", None), ("l", None), ("l", None)])
    pending = [(2.0, "h"), (1.0, "l"), (1.0, "l")]
    planned = placed_plan(state, pending)
    (h_row,) = planned.agents["h"][0].tolist()
    h_node = "a" if state.snapshot().columns.rows["a"] == h_row else "b"

    bind(state, "h-0", h_node)
    kept = planned.follow(state.snapshot().columns, runs(pending[1:]))
    assert kept is not None
    assert "h" not in kept.agents
    assert kept.agents["l"][0].tolist() == planned.agents["l"][0].tolist()
    assert kept.total[h_row] == 0.0
    assert kept.total.sum() == 2.0


def test_a_plan_is_dropped_when_the_cluster_leaves_it() -> None:
    state = cluster({"a": 4, "b": 4}, [("h", None), ("l", None), ("l", None)])
    pending = [(2.0, "h"), (1.0, "l"), (1.0, "l")]
    planned = placed_plan(state, pending)
    columns = state.snapshot().columns
    # Nothing changed: the plan holds as it is.
    same = planned.follow(columns, runs(pending))
    assert same is not None
    assert same.total.tolist() == planned.total.tolist()
    # One more pending replica: plan again.
    assert planned.follow(columns, runs([*pending, (1.0, "l")])) is None

    # A replica deleted: plan again.
    state.delete_pod(state.find_pod("default", "l-2").uid)  # type: ignore[union-attr]
    assert planned.follow(state.snapshot().columns, runs(pending[:2])) is None


def test_a_replica_placed_elsewhere_takes_the_place_its_agent_had_planned_last() -> None:
    state = cluster({"a": 4, "b": 4}, [("h", None), ("l", None), ("l", None)])
    pending = [(2.0, "h"), (1.0, "l"), (1.0, "l")]
    planned = placed_plan(state, pending)
    columns = state.snapshot().columns
    l_rows = planned.agents["l"][0].tolist()
    (h_row,) = planned.agents["h"][0].tolist()
    elsewhere = "b" if columns.rows["a"] == h_row else "a"

    # The heavy replica lands on the other node: its planned place is given up.
    bind(state, "h-0", elsewhere)
    kept = planned.follow(state.snapshot().columns, runs(pending[1:]))
    assert kept is not None
    assert "h" not in kept.agents
    assert kept.agents["l"][0].tolist() == l_rows
    assert kept.total.sum() == 2.0

    # A light one lands off its plan: the light replica planned last is struck off.
    # (Both were planned on the node the heavy one left free: half as loaded per GPU.)
    (off,) = [n for n in ("a", "b") if columns.rows[n] not in l_rows]
    bind(state, "l-1", off)
    again = kept.follow(state.snapshot().columns, runs(pending[2:]))
    assert again is not None
    assert again.agents["l"][0].tolist() == l_rows[:1]
    assert again.total.sum() == 1.0


def test_more_replicas_landed_than_planned_drops_the_plan() -> None:
    state = cluster({"a": 4, "b": 4}, [("h", None), ("h", None)])
    planned = placed_plan(state, [(2.0, "h")])  # the plan knew of one replica only
    bind(state, "h-0", "a")
    bind(state, "h-1", "b")
    assert planned.follow(state.snapshot().columns, runs([])) is None


def test_a_capped_plan_holds_while_lighter_replicas_move_up_into_the_list() -> None:
    heavy = [("h", None)] * 2
    light = [("l", None)] * MAX_PLANNED
    state = cluster({"a": 1024, "b": 1024}, heavy + light)
    pending = [(2.0, "h")] * 2 + [(1.0, "l")] * (MAX_PLANNED - 2)
    planned = placed_plan(state, pending)
    h_rows = planned.agents["h"][0].tolist()
    first = "a" if state.snapshot().columns.rows["a"] == h_rows[0] else "b"
    bind(state, "h-0", first)
    # One light replica more fits under the cap now: the plan still holds.
    moved_up = [(2.0, "h")] + [(1.0, "l")] * (MAX_PLANNED - 1)
    kept = planned.follow(state.snapshot().columns, runs(moved_up))
    assert kept is not None
    assert len(kept.agents["h"][0]) == 1
    # A new heavy replica under the cap is not one a new plan would leave out.
    assert planned.follow(state.snapshot().columns, runs([(3.0, "n"), *moved_up[:-1]])) is None


def test_a_new_node_drops_the_plan() -> None:
    state = cluster({"a": 4}, [("h", None)])
    planned = placed_plan(state, [(2.0, "h")])
    state.upsert_node(node("b", 4))
    assert planned.follow(state.snapshot().columns, runs([(2.0, "h")])) is None


def test_the_policy_plans_a_bulk_once_while_its_replicas_follow_the_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def counted(*args: Any) -> Plan:
        calls.append(1)
        return plan(*args)

    monkeypatch.setattr(popularity_policy, "plan", counted)
    forecast = Popularity({"heavy": 9.0, "light": 1.0})  # one refresh: the same object
    state = cluster({"a": 1, "b": 1, "c": 1}, [("heavy", None), ("light", None)])
    policy = PopularityAware()

    def best(agent: str) -> str:
        snapshot = state.snapshot()
        names = sorted(snapshot.nodes)
        ctx = ScoringContext(snapshot, forecast, GPU)
        scores = policy.score(pod("new", 1, agent=agent), snapshot.columns.rows_of(names), ctx)
        return names[int(np.argmax(scores))]

    heavy_node = best("heavy")
    bind(state, "heavy-0", heavy_node)
    light_node = best("light")
    assert light_node != heavy_node
    assert len(calls) == 1


# -- only where each agent may go, and by what each node's GPUs serve


def test_the_plan_puts_each_agent_only_on_the_rows_it_may_use() -> None:
    state = cluster({"a": 4, "b": 4, "c": 4}, [])
    columns = state.snapshot().columns
    only_c = np.zeros(columns.size, dtype=np.bool_)
    only_c[columns.rows["c"]] = True
    not_c = ~only_c
    pending = runs([(3.0, "pinned"), (3.0, "pinned"), (2.0, "free"), (1.0, "other")])
    planned = plan(
        columns, np.zeros(columns.size), pending, GPU, eligible={"pinned": only_c}, default=not_c
    )
    assert planned.agents["pinned"][0].tolist() == [columns.rows["c"]] * 2
    # The others (not in ``eligible``) take ``default``: a and b, never c.
    assert set(planned.agents["free"][0].tolist() + planned.agents["other"][0].tolist()) == {
        columns.rows["a"],
        columns.rows["b"],
    }
    nowhere = np.zeros(columns.size, dtype=np.bool_)
    assert plan(columns, np.zeros(columns.size), pending, GPU, default=nowhere).agents == {}


def test_the_plan_fills_by_load_per_unit_of_capacity() -> None:
    # a and b have 2 GPUs each; a's serve three times as much (6 units to b's 2).
    # h (3) goes to a: 0.5 per unit. The first l (1) to b: 0.5. The second l
    # finds them tied and takes a. Counting GPUs alone, a would be at 1.5 per
    # GPU and both l replicas would go to b.
    state = cluster({"a": 2, "b": 2}, [])
    columns = state.snapshot().columns
    capacity = np.zeros(columns.size)
    capacity[columns.rows["a"]], capacity[columns.rows["b"]] = 6.0, 2.0
    pending = runs([(3.0, "h"), (1.0, "l"), (1.0, "l")])
    planned = plan(columns, np.zeros(columns.size), pending, GPU, capacity)
    assert planned.agents["h"][0].tolist() == [columns.rows["a"]]
    assert sorted(planned.agents["l"][0].tolist()) == [columns.rows["a"], columns.rows["b"]]
    by_gpus = plan(columns, np.zeros(columns.size), pending, GPU)
    assert by_gpus.agents["l"][0].tolist() == [columns.rows["b"]] * 2


def test_a_pending_agent_that_may_only_use_one_node_reserves_that_node() -> None:
    # heavy's pods select b; once kube-scheduler has scored one of them, the
    # policy plans heavy's pending replica on b, and the light replica keeps off b.
    state = ClusterState()
    state.upsert_node(node("a", 1))
    state.upsert_node(node("b", 1, labels={"pool": "b"}))
    heavy = pod_from_json(
        pod_json("heavy-0", 1, agent="heavy", node_selector={"pool": "b"}), AGENT_LABEL
    )
    state.upsert_pod(heavy)
    state.upsert_pod(pod("light-0", 1, agent="light"))
    policy = PopularityAware()
    forecast = Popularity({"heavy": 9.0, "light": 1.0})

    def scores(new: Pod) -> list[float]:
        snapshot = state.snapshot()
        ctx = ScoringContext(snapshot, forecast, GPU)
        return policy.score(new, snapshot.columns.rows_of(["a", "b"]), ctx).tolist()

    a, b = scores(pod("light-0", 1, agent="light"))
    assert a < b  # heavy not seen yet: assumed to go anywhere, planned on a (first)
    scores(heavy)
    a, b = scores(pod("light-0", 1, agent="light"))
    assert a > b
