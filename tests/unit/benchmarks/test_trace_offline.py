"""The offline replay's model of kube-scheduler: filter, default scores, one pod after another."""

from __future__ import annotations

import pytest

from benchmarks.trace_offline import feasible, first_fit, kube_scores, replay, sharing_replay
from benchmarks.trace_replay import TraceNode, TracePod
from scheduler_extender.domain.cluster import ClusterState
from tests.builders import GPU_PRODUCT, node, pod

BIG = TraceNode("big", 96_000, 786_432, 8, "G2")
SMALL = TraceNode("small", 64_000, 262_144, 2, "T4")


def test_scores_are_least_allocated_plus_balanced_allocation() -> None:
    state = ClusterState()
    state.upsert_node(node("n", 8, cpu="10", memory="10Gi"))
    snapshot = state.snapshot()
    rows = snapshot.columns.rows_of(["n"])
    # After the pod: cpu 40% and memory 20% used -> least allocated 70, balanced 90.
    [score] = kube_scores(snapshot, rows, pod("p", 1, cpu="4", memory="2Gi"))
    assert score == pytest.approx(70 + 90)


def test_the_filter_checks_free_resources_and_gpu_models() -> None:
    state = ClusterState()
    state.upsert_node(node("t4", 2, labels={GPU_PRODUCT: "T4"}))
    state.upsert_node(node("g2", 8, labels={GPU_PRODUCT: "G2"}))
    snapshot = state.snapshot()

    def names(p: object) -> list[str | None]:
        return snapshot.columns.names_of(feasible(snapshot, p))  # type: ignore[arg-type]

    assert sorted(n or "" for n in names(pod("any", 1))) == ["g2", "t4"]
    assert names(pod("t4-only", 1, gpu_models=["T4"])) == ["t4"]
    assert names(pod("four", 4)) == ["g2"]


def test_kube_scheduler_alone_spreads_and_the_extender_keeps_the_big_node_whole() -> None:
    # Two 1-GPU pods then an 8-GPU pod: least-allocated puts the first on the emptier big
    # node, which the 8-GPU pod then lacks; the extender (with the 8-GPU pod seen
    # pending) packs the small pods on the small node.
    pods = [
        TracePod("a", 1000, 1024, 1),
        TracePod("b", 1000, 1024, 1),
        TracePod("c", 1000, 1024, 8),
    ]
    alone = replay([BIG, SMALL], pods, extender=False, arrivals="bulk")
    assert alone["a"] == "big"
    assert "c" not in alone
    ours = replay([BIG, SMALL], pods, extender=True, arrivals="bulk")
    assert ours == {"a": "small", "b": "small", "c": "big"}


def test_the_dra_allocator_model_takes_the_first_devices_that_fit() -> None:
    assert first_fit([1000, 400, 1000], TracePod("s", 1000, 1024, 1, milli=300)) == [0]
    assert first_fit([200, 400, 1000], TracePod("s", 1000, 1024, 1, milli=300)) == [1]
    assert first_fit([1000, 400, 1000], TracePod("w", 1000, 1024, 2)) == [0, 2]
    assert first_fit([1000, 400], TracePod("w", 1000, 1024, 2)) is None


def test_the_sharing_replay_allocates_devices_and_never_overcommits_one() -> None:
    pods = [TracePod(f"s{i}", 1000, 1024, 1, milli=600) for i in range(4)]
    pods.append(TracePod("whole", 1000, 1024, 2))
    for extender in (False, True):
        placed, taken = sharing_replay([SMALL], pods, extender=extender, arrivals="bulk")
        # Two 600-thousandth shares take the two GPUs; the others and the 2-GPU pod wait.
        assert sorted(placed) == ["s0", "s1"]
        assert sorted(d for name in placed for d, _ in taken[name]) == [
            "small/gpu-0",
            "small/gpu-1",
        ]
