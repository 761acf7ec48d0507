"""The popularity-aware policy: predicted load per GPU, hot spreading, cold packing."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.popularity import Popularity
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE, ScoringContext
from scheduler_extender.domain.scoring.popularity import PopularityAware, node_loads, replica_loads
from tests.builders import GPU, node, pod


def cluster(gpus: dict[str, int], placed: list[tuple[str, str, int]]) -> ClusterState:
    """Nodes with their GPUs; pods as (agent, node, gpus)."""
    state = ClusterState()
    for name, count in gpus.items():
        state.upsert_node(node(name, count))
    for i, (agent, where, count) in enumerate(placed):
        state.upsert_pod(pod(f"{agent}-{i}", count, node=where, agent=agent))
    return state


def scores(state: ClusterState, agent: str, rates: dict[str, float], gpus: int = 1) -> list[float]:
    snapshot = state.snapshot()
    names = sorted(snapshot.nodes)
    rows = snapshot.columns.rows_of(names)
    ctx = ScoringContext(snapshot, Popularity(rates), GPU)
    return PopularityAware().score(pod("new", gpus, agent=agent), rows, ctx).tolist()


def test_loads_per_replica_and_per_node() -> None:
    state = cluster({"a": 8, "b": 8}, [("x", "a", 1), ("x", "b", 1), ("y", "a", 1)])
    loads = replica_loads({"x": 10.0, "y": 3.0, "z": 1.0}, state.snapshot().agent_replicas)
    assert loads == {"x": 5.0, "y": 3.0, "z": 1.0}
    columns = state.snapshot().columns
    per_node = node_loads(columns, loads)
    assert per_node[columns.rows["a"]] == 8.0
    assert per_node[columns.rows["b"]] == 5.0


def test_a_hot_replica_goes_where_the_load_per_gpu_stays_lowest() -> None:
    # a runs the other hot replica; b runs a warm agent; c is idle but has fewer GPUs.
    state = cluster(
        {"a": 8, "b": 8, "c": 4},
        [("hot", "a", 1), ("warm", "b", 1), ("cold", "b", 1)],
    )
    a, b, c = scores(state, "hot", {"hot": 80.0, "warm": 16.0, "cold": 0.1})
    # After placing: a (40+40)/8 = 10, b (40+16+0.1)/8 = 7.01, c 40/4 = 10.
    assert b == pytest.approx(1.0)
    assert a < b
    assert c < b


def test_the_pod_being_placed_counts_as_a_replica_even_before_the_watch_sees_it() -> None:
    # The cache knows one hot replica (on a), not the new pod: with it, each hot
    # replica serves 50, so a goes from 100/8 to (50+50)/8 = 12.5 while b would
    # get (75+50)/8 = 15.6. Counting only the replicas seen (100 each) would
    # wrongly make b (21.9) look better than a (25).
    state = cluster(
        {"a": 8, "b": 8, "c": 8},
        [("hot", "a", 1), ("other", "b", 1), ("tiny", "c", 1), ("tiny", "c", 1), ("tiny", "c", 1)],
    )
    a, b, c = scores(state, "hot", {"hot": 100.0, "other": 75.0, "tiny": 0.3})
    assert c > a > b


def test_cold_agents_are_packed_onto_the_fullest_node_with_room() -> None:
    state = cluster(
        {"a": 8, "b": 8, "c": 8},
        [("hot", "a", 1), ("cold", "b", 4), ("other", "b", 2)],
    )
    a, b, c = scores(state, "cold", {"hot": 100.0, "cold": 0.5, "other": 0.2})
    # b: 7 of 8 GPUs in use after placing, c: 1 of 8; a runs the hot agent
    # (12.5 per GPU against a level of 4.2) and has no room for more load.
    assert b > c > a


def test_packing_stops_at_the_level() -> None:
    # x: 8 replicas of 1 request/s each, 6 on a and 2 on b. A new agent y of 1
    # request/s: the level is 9/16 per GPU; a would reach 7/8, over it, b 3/8.
    state = cluster({"a": 8, "b": 8}, [("x", "a", 1)] * 6 + [("x", "b", 1)] * 2)
    a, b = scores(state, "y", {"x": 8.0, "y": 1.0})
    assert b > a  # although a is fuller
    assert b > 0.5  # fits: scored as packing among the nodes with room
    assert a < 0.5  # over the level


def test_an_agent_forecast_at_zero_is_packed_not_spread() -> None:
    state = cluster({"a": 8, "b": 8}, [("idle", "a", 6)])
    a, b = scores(state, "idle", {"idle": 0.0})
    assert a > b


def test_small_differences_do_not_become_all_or_nothing() -> None:
    # Three hot replicas of 100 each (the new pod included): a ends at 200/8 = 25
    # per GPU, b at 200.8/8 = 25.1. A 0.1 difference against the 12.5 the
    # replica adds on its own is a mild preference, not 1 against 0.
    state = cluster(
        {"a": 8, "b": 8}, [("x", "a", 1), ("y", "b", 1), ("hot", "a", 1), ("hot", "b", 1)]
    )
    a, b = scores(state, "hot", {"x": 0.0, "y": 0.8, "hot": 300.0})
    assert a == pytest.approx(1.0)
    assert b == pytest.approx(1.0 - 0.1 / 12.5)


def test_without_a_forecast_for_the_agent_the_policy_has_no_opinion() -> None:
    state = cluster({"a": 8, "b": 8}, [("hot", "a", 1)])
    assert scores(state, "unknown", {"hot": 100.0}) == [NEUTRAL_SCORE, NEUTRAL_SCORE]


def test_the_best_node_minimises_the_highest_load_per_gpu_across_the_cluster() -> None:
    rng = np.random.default_rng(9)
    for _ in range(50):
        gpus = {f"n{i}": int(rng.choice([4, 8])) for i in range(6)}
        agents = [f"a{i}" for i in range(5)]
        placed = [(str(rng.choice(agents)), str(rng.choice(list(gpus))), 1) for _ in range(10)]
        rates = {a: float(rng.uniform(1, 100)) for a in agents}
        rates["a0"] = 500.0  # hot
        state = cluster(gpus, placed)
        result = scores(state, "a0", rates)
        snapshot = state.snapshot()
        names = sorted(snapshot.nodes)
        count = sum(1 for agent, _, _ in placed if agent == "a0") + 1
        per_replica = {a: r / max(sum(1 for p in placed if p[0] == a), 1) for a, r in rates.items()}
        per_replica["a0"] = rates["a0"] / count
        load = {n: sum(per_replica[a] for a, where, _ in placed if where == n) for n in names}

        # The highest load per GPU in the cluster after placing on each node.
        worst = [
            max((load[n] + (per_replica["a0"] if n == target else 0.0)) / gpus[n] for n in names)
            for target in names
        ]
        assert worst[int(np.argmax(result))] == pytest.approx(min(worst))
