"""The popularity-aware policy: predicted load per GPU, hot spreading, cold packing."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from scheduler_extender.adapters.kube.schema import node_from_json, pod_from_json
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.popularity import (
    GPU_PRODUCT_LABEL,
    UNIFORM_GPUS,
    GpuCapacity,
    Popularity,
)
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE, ScoringContext
from scheduler_extender.domain.scoring.popularity import PopularityAware, node_loads, replica_loads
from tests.builders import AGENT_LABEL, GPU, node, node_json, pod, pod_json


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


# -- the level over the nodes the pod may use, and load per unit of GPU capacity


def with_nodes(state: ClusterState, *nodes: Node) -> ClusterState:
    for extra in nodes:
        state.upsert_node(extra)
    return state


def scores_on(
    state: ClusterState,
    new: Pod,
    names: list[str],
    rates: dict[str, float],
    policy: PopularityAware | None = None,
) -> list[float]:
    snapshot = state.snapshot()
    ctx = ScoringContext(snapshot, Popularity(rates), GPU)
    scorer = policy if policy is not None else PopularityAware()
    return scorer.score(new, snapshot.columns.rows_of(names), ctx).tolist()


def cordoned(name: str, gpus: int) -> Node:
    raw = node_json(name, gpus)
    raw["spec"]["unschedulable"] = True
    return node_from_json(raw)


# x: 8 replicas of 1 request/s, 6 on a and 2 on b; a new agent y of 1 request/s.
# Over a and b the level is 9/16 per GPU: b (3/8 after) fits, a (7/8) does not.
PACKED = [("x", "a", 1)] * 6 + [("x", "b", 1)] * 2
RATES = {"x": 8.0, "y": 1.0}


@pytest.mark.parametrize(
    "unusable",
    [
        pytest.param([cordoned("c", 8), cordoned("d", 8)], id="cordoned"),
        pytest.param(
            [
                node(n, 8, taints=[{"key": "team", "value": "b", "effect": "NoSchedule"}])
                for n in "cd"
            ],
            id="tainted",
        ),
        pytest.param([node(n, 8, labels={"pool": "other"}) for n in "cd"], id="not selected"),
    ],
)
def test_nodes_the_pod_cannot_use_do_not_lower_its_level(unusable: list[Node]) -> None:
    new = pod_from_json(pod_json("new", 1, agent="y", node_selector={"pool": "main"}), AGENT_LABEL)
    pool = {"labels": {"pool": "main"}}
    alone = cluster({}, [])
    with_nodes(alone, node("a", 8, **pool), node("b", 8, **pool))
    for i, (agent, where, count) in enumerate(PACKED):
        alone.upsert_pod(pod(f"{agent}-{i}", count, node=where, agent=agent))
    expected = scores_on(alone, new, ["a", "b"], RATES)
    a, b = expected
    assert b > 0.5 > a  # b fits under the level of the usable nodes, a does not

    # Idle nodes the pod may not use: counted, they would halve the level and
    # put b over it too.
    assert scores_on(with_nodes(alone, *unusable), new, ["a", "b"], RATES) == expected


def test_load_elsewhere_is_not_spread_over_the_nodes_the_pod_may_use() -> None:
    # The hot load on c (which the pod may not use) raises the cluster-wide
    # level; over a and b alone it is 9/16 and a stays over it.
    new = pod_from_json(pod_json("new", 1, agent="y", node_selector={"pool": "main"}), AGENT_LABEL)
    state = cluster({}, [])
    pool = {"labels": {"pool": "main"}}
    with_nodes(state, node("a", 8, **pool), node("b", 8, **pool), node("c", 8))
    for i, (agent, where, count) in enumerate([*PACKED, ("hot", "c", 1)]):
        state.upsert_pod(pod(f"{agent}-{i}", count, node=where, agent=agent))
    a, b = scores_on(state, new, ["a", "b"], {**RATES, "hot": 100.0})
    assert b > 0.5 > a


def gpu_node(name: str, product: str, gpus: int = 1) -> Node:
    return node(name, gpus, labels={GPU_PRODUCT_LABEL: product})


def test_a_faster_gpu_serves_more_of_the_load() -> None:
    # One replica of x (10 requests/s) on each node. Per GPU the two nodes are
    # alike; per unit of capacity the H100 (3) carries a third of the L4's (1).
    state = with_nodes(
        cluster({}, []),
        gpu_node("h100", "NVIDIA-H100-80GB-HBM3", 2),
        gpu_node("l4", "NVIDIA-L4", 2),
    )
    state.upsert_pod(pod("x-0", 1, node="h100", agent="x"))
    state.upsert_pod(pod("x-1", 1, node="l4", agent="x"))
    rates = {"x": 20.0, "hot": 30.0}
    new = pod("new", 1, agent="hot")
    uniform = scores_on(state, new, ["h100", "l4"], rates)
    assert uniform[0] == uniform[1]
    capacity = GpuCapacity(MappingProxyType({"NVIDIA-H100-80GB-HBM3": 3.0}))
    h100, l4 = scores_on(state, new, ["h100", "l4"], rates, PopularityAware(capacity))
    assert h100 > l4  # unknown models count 1.0, as the L4 does here


def test_a_relabelled_node_changes_its_capacity_and_the_pods_it_admits() -> None:
    # The policy keeps what nodes say across snapshots: a change of labels must reach it.
    capacity = GpuCapacity(MappingProxyType({"fast": 4.0}))
    policy = PopularityAware(capacity)
    state = with_nodes(cluster({}, []), gpu_node("a", "slow", 2), gpu_node("b", "slow", 2))
    state.upsert_pod(pod("x-0", 1, node="a", agent="x"))
    state.upsert_pod(pod("x-1", 1, node="b", agent="x"))
    rates = {"x": 20.0, "hot": 30.0}
    new = pod("new", 1, agent="hot")
    before = scores_on(state, new, ["a", "b"], rates, policy)
    assert before[0] == before[1]
    state.upsert_node(gpu_node("a", "fast", 2))
    a, b = scores_on(state, new, ["a", "b"], rates, policy)
    assert a > b


def test_gpu_capacity_reads_the_gpu_product_label() -> None:
    capacity = GpuCapacity(MappingProxyType({"NVIDIA-H100-80GB-HBM3": 3.0}))
    assert capacity.of({GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}) == 3.0
    assert capacity.of({GPU_PRODUCT_LABEL: "NVIDIA-L4"}) == 1.0
    assert capacity.of({}) == 1.0
    assert not capacity.uniform
    assert UNIFORM_GPUS.uniform
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="capacities"):
            GpuCapacity(MappingProxyType({"x": bad}))


def test_a_policy_kept_across_snapshots_sees_cordons_come_and_go_and_nodes_leave() -> None:
    new = pod("new", 1, agent="y")
    state = cluster({"a": 8, "b": 8}, PACKED)
    expected = scores_on(state, new, ["a", "b"], RATES)
    policy = PopularityAware()
    with_nodes(state, node("c", 8), node("d", 8))
    open_ = scores_on(state, new, ["a", "b"], RATES, policy)
    assert open_ != expected
    with_nodes(state, cordoned("c", 8), cordoned("d", 8))
    assert scores_on(state, new, ["a", "b"], RATES, policy) == expected
    with_nodes(state, node("c", 8))
    state.delete_node("d")
    with_nodes(state, node("d", 8))
    assert scores_on(state, new, ["a", "b"], RATES, policy) == open_
    state.delete_node("c")
    state.delete_node("d")
    assert scores_on(state, new, ["a", "b"], RATES, policy) == expected
