"""Each scoring policy on its own, and their weighted combination."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from scheduler_extender.config import Settings
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.columns import IntArray
from scheduler_extender.domain.popularity import NEUTRAL, Popularity
from scheduler_extender.domain.scoring.agent_spread import AgentSpread
from scheduler_extender.domain.scoring.gpu_binpack import GpuBinPacking
from scheduler_extender.domain.scoring.policy import NEUTRAL_SCORE, ScoringContext
from scheduler_extender.domain.scoring.popularity import PopularityAware
from scheduler_extender.domain.scoring.registry import Scorer, UnknownPolicyError
from tests.builders import GPU, node, pod


def setup(*pods: tuple[str, int, str, str | None]) -> ClusterState:
    state = ClusterState()
    for name in ("a", "b", "c"):
        state.upsert_node(node(name, 8))
    for name, gpus, where, agent in pods:
        state.upsert_pod(pod(name, gpus, node=where, agent=agent))
    return state


def nodes(state: ClusterState) -> IntArray:
    """Rows of a, b and c."""
    return state.snapshot().columns.rows_of(["a", "b", "c"])


def ctx(state: ClusterState, popularity: Popularity = NEUTRAL) -> ScoringContext:
    return ScoringContext(state.snapshot(), popularity, GPU)


def test_binpack_prefers_the_fullest_node_that_fits() -> None:
    state = setup(("x", 6, "a", None), ("y", 2, "b", None))
    scores = GpuBinPacking().score(pod("p", 2), nodes(state), ctx(state))
    assert scores[0] == 1.0  # exact fit on a
    assert scores[0] > scores[1] > scores[2]


def test_binpack_is_neutral_for_pods_without_gpus() -> None:
    state = setup()
    assert set(GpuBinPacking().score(pod("p", 0), nodes(state), ctx(state)).tolist()) == {
        NEUTRAL_SCORE
    }


def test_spread_prefers_nodes_without_replicas_of_the_agent() -> None:
    state = setup(("m0", 1, "a", "m"), ("m1", 1, "a", "m"), ("m2", 1, "b", "m"))
    a, b, c = AgentSpread().score(pod("m3", 1, agent="m"), nodes(state), ctx(state))
    assert c > b > a


def test_popularity_spreads_hot_agents_and_packs_cold_ones() -> None:
    state = setup(("hot-0", 1, "a", "hot"), ("cold-0", 1, "b", "cold"), ("cold-1", 1, "b", "cold"))
    popularity = Popularity({"hot": 100.0, "cold": 1.0})
    policy = PopularityAware()
    hot = policy.score(pod("hot-1", 1, agent="hot"), nodes(state), ctx(state, popularity))
    assert hot[0] < hot[1]
    assert hot[0] < hot[2]
    cold = policy.score(pod("cold-2", 1, agent="cold"), nodes(state), ctx(state, popularity))
    assert cold[1] == np.max(cold)  # packed with the other cold replicas


def test_popularity_without_a_forecast_has_no_opinion() -> None:
    state = setup(("hot-0", 1, "a", "hot"))
    scores = PopularityAware().score(pod("hot-1", 1, agent="hot"), nodes(state), ctx(state))
    assert set(scores.tolist()) == {NEUTRAL_SCORE}


def test_scorer_combines_weights_into_0_to_10() -> None:
    state = setup(("m0", 1, "a", "m"))
    scorer = Scorer.from_weights({"agent_spread": 1.0, "gpu_binpack": 1.0})
    table = scorer.score(
        pod("m1", 1, agent="m"), ["a", "b", "c"], nodes(state), ctx(state), explain=True
    )
    assert all(0 <= s <= 10 for s in table.scores)
    assert set(table.contributions) == {"agent_spread", "gpu_binpack"}
    # Each policy's weighted contribution adds up to the (unrounded) score.
    for i in range(3):
        assert abs(sum(c[i] for c in table.contributions.values()) - table.scores[i]) <= 0.5
    assert table.scores[0] < table.scores[1]  # a already runs a replica of m


def test_unknown_policy_names_are_rejected() -> None:
    with pytest.raises(UnknownPolicyError, match="nope"):
        Scorer.from_weights({"nope": 1.0})


def test_the_settings_check_weights_as_the_scorer_does() -> None:
    with pytest.raises(ValueError, match="negative"):
        Scorer.from_weights({"popularity": -1.0})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Settings(score_weights={"popularity": -1.0})
    with pytest.raises(ValidationError, match="unknown scoring policies"):
        Settings(score_weights={"nope": 1.0})
