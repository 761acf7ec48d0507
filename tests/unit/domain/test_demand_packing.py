"""Demand-aware packing on small fleets whose best answer is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.columns import FloatArray
from scheduler_extender.domain.filtering import FilterRules, Reason, filter_nodes
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.popularity import NEUTRAL, Popularity
from scheduler_extender.domain.scoring.demand_packing import DemandAwarePacking, forecast_weights
from scheduler_extender.domain.scoring.gpu_binpack import GpuBinPacking
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE, ScoringContext
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, Scorer
from tests.builders import GPU, GPU_PRODUCT, node, pod


def fleet(*nodes: tuple[str, int, str, str]) -> ClusterState:
    """Nodes as (name, GPUs, model, cpu)."""
    state = ClusterState()
    for name, gpus, model, cpu in nodes:
        state.upsert_node(node(name, gpus, cpu=cpu, labels={GPU_PRODUCT: model}))
    return state


def scores(state: ClusterState, p: Pod, names: list[str], policy: object = None) -> FloatArray:
    snapshot = state.snapshot()
    chosen = policy if policy is not None else DemandAwarePacking()
    return chosen.score(  # type: ignore[attr-defined, no-any-return]
        p, snapshot.columns.rows_of(names), ScoringContext(snapshot, NEUTRAL, GPU)
    )


def best(state: ClusterState, p: Pod, names: list[str]) -> str:
    return names[int(np.argmax(scores(state, p, names)))]


def scarce_t4_fleet() -> ClusterState:
    """An empty 2-GPU T4 node among empty 8-GPU nodes; T4-only pods waiting, others seen."""
    state = fleet(("t4", 2, "T4", "64"), *((f"g2-{i}", 8, "G2", "64") for i in range(4)))
    for i in range(2):
        state.upsert_pod(pod(f"t4-only-{i}", 1, gpu_models=["T4"]))
    for i in range(4):
        state.upsert_pod(pod(f"any-{i}", 1))
    return state


def test_an_unconstrained_pod_stays_off_the_scarce_model_constrained_pods_need() -> None:
    state = scarce_t4_fleet()
    assert best(state, pod("any", 1), ["t4", "g2-0"]) == "g2-0"
    # What the issue saw: fullest-after-placement puts it on the small T4 node.
    binpack = scores(state, pod("any", 1), ["t4", "g2-0"], GpuBinPacking())
    assert binpack[0] > binpack[1]


def test_a_constrained_pod_still_gets_the_model_it_needs() -> None:
    state = scarce_t4_fleet()
    assert best(state, pod("t4-only", 1, gpu_models=["T4"]), ["t4"]) == "t4"


def test_without_constrained_demand_the_small_node_is_packed_first() -> None:
    state = fleet(("t4", 2, "T4", "64"), ("g2", 8, "G2", "64"))
    for i in range(2):
        state.upsert_pod(pod(f"big-{i}", 8))  # 8-GPU pods waiting: keep g2 whole
    state.upsert_pod(pod("any-0", 1))
    assert best(state, pod("any", 1), ["t4", "g2"]) == "t4"


def test_a_small_pod_goes_where_the_largest_shapes_no_longer_fit() -> None:
    state = fleet(("a", 8, "G2", "64"), ("b", 8, "G2", "64"))
    state.upsert_pod(pod("used", 1, node="a"))
    state.upsert_pod(pod("big", 8))
    assert best(state, pod("small", 1), ["a", "b"]) == "a"


def test_gpus_stranded_by_cpu_are_used_before_gpus_that_still_serve() -> None:
    # 2-GPU pods with 16 cpus each are the demand. "a" has 6 free GPUs but cpu for one such
    # pod only (its other GPUs are stranded); "b" has 4 free GPUs and cpu for both.
    state = fleet(("a", 8, "G2", "20"), ("b", 8, "G2", "64"))
    state.upsert_pod(pod("on-a", 2, node="a", cpu="1"))
    state.upsert_pod(pod("on-b", 4, node="b", cpu="1"))
    for i in range(3):
        state.upsert_pod(pod(f"wide-{i}", 2, cpu="16"))
    assert best(state, pod("small", 1, cpu="1"), ["a", "b"]) == "a"
    binpack = scores(state, pod("small", 1, cpu="1"), ["a", "b"], GpuBinPacking())
    assert binpack[1] > binpack[0]  # fill alone would take b's usable pair


def test_without_demand_it_packs_the_fullest_node() -> None:
    state = fleet(("a", 8, "G2", "64"), ("b", 4, "G2", "64"))
    assert not state.snapshot().demand
    assert scores(state, pod("p", 0), ["a", "b"]).tolist() == [NEUTRAL_SCORE] * 2
    ours = scores(state, pod("p", 2), ["a", "b"])
    fill = scores(state, pod("p", 2), ["a", "b"], GpuBinPacking())
    assert np.array_equal(ours, fill)
    assert fill[1] > fill[0]


def test_non_agent_pods_are_scored_by_demand_packing_alone() -> None:
    state = scarce_t4_fleet()
    scorer = Scorer.from_weights(DEFAULT_WEIGHTS)
    snapshot = state.snapshot()
    names = ["t4", "g2-0"]
    rows = snapshot.columns.rows_of(names)
    ctx = ScoringContext(snapshot, NEUTRAL, GPU)
    table = scorer.score(pod("any", 1), names, rows, ctx, explain=True)
    assert set(table.contributions) == {"demand_packing"}
    assert table.scores[1] >= 9
    assert table.scores[0] <= 1
    replica = scorer.score(pod("r", 1, agent="m"), names, rows, ctx, explain=True)
    assert set(replica.contributions) == {"gpu_binpack", "agent_spread", "popularity"}
    without = Scorer.from_weights({**DEFAULT_WEIGHTS, "demand_packing": 0})
    binpacked = without.score(pod("any", 1), names, rows, ctx, explain=True)
    assert set(binpacked.contributions) == {"gpu_binpack"}
    assert binpacked.scores == [5, 1]  # half of the T4 node, an eighth of the other


def test_the_filter_rejects_nodes_of_models_the_pod_excludes() -> None:
    state = scarce_t4_fleet()
    outcome = filter_nodes(
        pod("t4-only", 1, gpu_models=["T4"]), ["t4", "g2-0"], state.snapshot(), FilterRules()
    )
    assert outcome.passed == ["t4"]
    assert outcome.failed["g2-0"].reason is Reason.GPU_MODEL
    assert outcome.failed["g2-0"].unresolvable
    selected = filter_nodes(
        pod("p", 1, node_selector={GPU_PRODUCT: "G2"}),
        ["t4", "g2-0"],
        state.snapshot(),
        FilterRules(),
    )
    assert selected.passed == ["g2-0"]


def test_a_pod_without_gpus_goes_where_the_gpus_are_taken() -> None:
    state = fleet(("busy", 8, "G2", "64"), ("free", 8, "G2", "64"))
    state.upsert_pod(pod("all-gpus", 8, node="busy", cpu="8"))
    for i in range(2):
        state.upsert_pod(pod(f"wide-{i}", 8, cpu="60"))  # need nearly all of a node's cpu
    assert best(state, pod("cpu-only", 0, cpu="16"), ["free", "busy"]) == "busy"


def test_no_whole_node_demand_is_assumed_beyond_the_pods_seen() -> None:
    # The last whole 8-GPU node against a scarce T4 node: with no 8-GPU pod seen, breaking
    # the big node costs nothing in demand, taking a T4 GPU costs the T4-only pods.
    state = fleet(("t4", 2, "T4", "64"), ("g2", 8, "G2", "64"))
    for i in range(2):
        state.upsert_pod(pod(f"t4-only-{i}", 1, gpu_models=["T4"]))
    for i in range(4):
        state.upsert_pod(pod(f"any-{i}", 1))
    assert best(state, pod("small", 1), ["t4", "g2"]) == "g2"


def agents_fleet() -> ClusterState:
    """p has 4 GPUs free, q 3; 3-GPU pods wait; agents hot (1 replica) and cold (3), 4 GPUs each."""
    state = fleet(*((name, 8, "G2", "64") for name in ("p", "q", "r", "t")))
    state.upsert_pod(pod("fill-p", 4, node="p"))
    state.upsert_pod(pod("fill-q", 5, node="q"))
    state.upsert_pod(pod("hot-0", 4, agent="hot", node="r"))
    for i, where in enumerate(("t", "t", "r")):
        state.upsert_pod(pod(f"cold-{i}", 4, agent="cold", node=where))
    for i in range(8):
        state.upsert_pod(pod(f"three-{i}", 3))
    return state


def test_the_forecast_adds_the_replicas_an_agent_lacks_for_its_share_of_the_load() -> None:
    snapshot = agents_fleet().snapshot()
    four = snapshot.agent_shapes["hot"]
    assert snapshot.agent_shapes["cold"] == four
    at = snapshot.demand.classes.index(four)
    seen = forecast_weights(snapshot, NEUTRAL)
    # hot: 9/10 of the load, so 0.9 x 4 replicas = 3.6; it has 1: 2.6 more are coming.
    hot = forecast_weights(snapshot, Popularity({"hot": 9.0, "cold": 1.0}, source="forecast"))
    assert hot[at] == pytest.approx(seen[at] + 2.6)
    assert np.delete(hot, at) == pytest.approx(np.delete(seen, at))


def test_a_hot_agents_forecast_keeps_room_for_its_next_replicas() -> None:
    # Without a forecast the 1-GPU pod goes to p (q's 3 GPUs stay for a waiting 3-GPU pod);
    # with hot forecast to need more 4-GPU replicas, p's 4 free GPUs stay whole for them.
    state = agents_fleet()
    names = ["p", "q"]
    snapshot = state.snapshot()
    rows = snapshot.columns.rows_of(names)
    small = pod("small", 1)

    def choice(popularity: Popularity) -> str:
        context = ScoringContext(snapshot, popularity, GPU)
        return names[int(np.argmax(DemandAwarePacking().score(small, rows, context)))]

    assert choice(NEUTRAL) == "p"
    assert choice(Popularity({"hot": 9.0, "cold": 1.0}, source="forecast")) == "q"


def test_scores_kept_up_bind_by_bind_equal_scores_computed_afresh() -> None:
    state = fleet(*((f"n{i}", 8 if i % 2 else 2, "G2" if i % 3 else "T4", "64") for i in range(8)))
    names = [f"n{i}" for i in range(8)]
    for i in range(6):
        state.upsert_pod(pod(f"seen-{i}", 1 + i % 3, gpu_models=["T4"] if i % 2 else None))
    kept = DemandAwarePacking()
    for i in range(10):
        incoming = pod(f"p{i}", 1 + i % 2, cpu=str(1 + i))
        ours = scores(state, incoming, names, kept)
        assert np.allclose(ours, scores(state, incoming, names, DemandAwarePacking()))
        state.upsert_pod(dataclasses.replace(incoming, node_name=names[int(np.argmax(ours))]))
