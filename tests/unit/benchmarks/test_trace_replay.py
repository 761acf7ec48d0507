"""The trace replay's arithmetic: arrivals, variants, figures and the offline references."""

from __future__ import annotations

import pytest

from benchmarks.trace_replay import (
    TraceNode,
    TracePod,
    arrivals,
    best_fit_offline,
    best_fit_sharing_offline,
    best_fit_sharing_online,
    constrained,
    figures,
    multi_gpu_heavy,
    repeated,
    sharing_figures,
    upper_bound,
)

BIG = TraceNode("big", 96_000, 786_432, 8, "G2")
SMALL = TraceNode("small", 64_000, 262_144, 2, "T4")
FLEET = [BIG, SMALL]  # 10 GPUs


def pod(name: str, gpus: int, models: tuple[str, ...] = (), cpu: int = 1000) -> TracePod:
    return TracePod(name, cpu, 1024, gpus, models)


def test_arrivals_stop_past_120_percent_and_skip_pods_no_node_holds() -> None:
    pods = [pod(f"p{i}", 1) for i in range(20)]
    assert len(arrivals(pods, FLEET)) == 13  # 13 GPUs requested > 12
    huge = pod("huge", 16)
    assert huge not in arrivals([huge, *pods], FLEET)


def test_fragmentation_failure_is_a_multi_gpu_pod_refused_with_enough_gpus_spread() -> None:
    pods = [pod("a", 1), pod("b", 1), pod("eight", 8), pod("c", 1)]
    # "a" on the big node leaves 7 + 2 free: the 8-GPU pod fits nowhere, 9 GPUs are free.
    f = figures(FLEET, pods, {"a": "big", "b": "small", "c": "small"})
    assert f.first_fragmentation == pytest.approx(0.2)
    assert (f.eight_bound, f.eight_total) == (0, 1)
    assert f.at_100 == pytest.approx(0.2)  # requests reach 10 GPUs with the 8-GPU pod
    assert f.failures_by_model == {"any": 1}
    assert (f.fragmented_nodes, f.fragmented_free) == (1, 7)


def test_a_multi_gpu_pod_refused_for_lack_of_gpus_is_no_fragmentation() -> None:
    pods = [pod("a", 8), pod("b", 2), pod("c", 2)]
    f = figures(FLEET, pods, {"a": "big", "b": "small"})
    assert f.first_fragmentation is None
    assert (f.multi_bound, f.multi_total) == (2, 3)


def test_the_offline_reference_packs_large_pods_first_and_keeps_scarce_models() -> None:
    pods = [pod("one", 1), pod("t4-only", 1, ("T4",)), pod("t4-too", 1, ("T4",)), pod("eight", 8)]
    placement = best_fit_offline([*FLEET, TraceNode("big2", 96_000, 786_432, 8, "G2")], pods)
    assert placement["t4-only"] == placement["t4-too"] == "small"
    assert placement["eight"] in ("big", "big2")
    assert placement["one"] != placement["eight"]


def test_the_lp_bound_caps_large_pods_at_one_per_node() -> None:
    pods = [pod("e1", 8), pod("e2", 8), pod("s", 2)]
    at_100, at_end = upper_bound(FLEET, pods)
    assert at_100 == pytest.approx(0.8)  # e1 and e2 reach 10 GPUs requested; one fits
    assert at_end == pytest.approx(1.0)


def test_variants_are_seeded_and_keep_the_arrival_order() -> None:
    pods = [pod(f"p{i}", 1 + (i % 3 == 0)) for i in range(30)]
    one, two = constrained(pods, FLEET), constrained(pods, FLEET)
    assert one == two
    assert sum(1 for p in one if p.models) == 10
    assert [p.name for p in one] == [p.name for p in pods]
    assert all(set(p.models) <= {"G2", "T4"} for p in one)
    heavy = multi_gpu_heavy([pod("a", 1), pod("b", 2)])
    assert [p.name for p in heavy] == ["a", "b", "b-x0", "b-x1", "b-x2"]


def share(name: str, milli: int) -> TracePod:
    return TracePod(name, 1000, 1024, 1, milli=milli)


def test_sharing_arrivals_count_a_share_as_its_fraction_of_a_gpu() -> None:
    pods = [share(f"s{i}", 500) for i in range(40)]
    assert len(arrivals(pods, FLEET)) == 13  # each counted as a whole GPU
    assert len(arrivals(pods, FLEET, shares=True)) == 25  # 12.5 GPUs requested > 12


def test_sharing_figures_count_shares_on_devices_from_the_claims() -> None:
    pods = [share("a", 300), share("b", 600), pod("eight", 8), share("c", 500)]
    placement = {"a": "big", "b": "big", "c": "small"}
    devices = {"a": [("big/gpu-0", 300)], "b": [("big/gpu-1", 600)], "c": [("small/gpu-0", 500)]}
    f = sharing_figures(FLEET, pods, placement, devices)
    # Shares on two of the big node's GPUs: 6 untouched GPUs there and 2 on the small one,
    # enough for the 8-GPU pod summed over nodes, so it is a multi-GPU failure at 0.9 of 10 GPUs.
    assert f.first_multi_failure == pytest.approx(0.09)
    assert f.at_end == pytest.approx(0.14)
    assert f.at_100 == f.at_end  # 9.4 GPUs requested: never 100% of the 10
    assert f.unallocated_end == pytest.approx(0.86)
    assert (f.fragmented_gpus, f.fragmented_free) == (3, pytest.approx(1.6))
    assert f.overcommitted == 0
    over = sharing_figures(FLEET, pods, placement, {**devices, "c": [("big/gpu-1", 500)]})
    assert over.overcommitted == 1


def test_the_sharing_reference_packs_shares_on_the_tightest_device() -> None:
    # A 700 then a 300 share and a 2-GPU pod on the small node's two GPUs: largest first,
    # the 2-GPU pod takes both untouched GPUs of the small node, the shares go to the big
    # node, the 300 onto the GPU the 700 left 300 of.
    pods = [share("a", 700), share("b", 300), pod("pair", 2, ("T4",))]
    placement, devices = best_fit_sharing_offline(FLEET, pods)
    assert placement == {"a": "big", "b": "big", "pair": "small"}
    assert devices["b"] == [("big/gpu-0", 300)] == [(devices["a"][0][0], 300)]
    assert devices["pair"] == [("small/gpu-0", 1000), ("small/gpu-1", 1000)]


def test_the_papers_best_fit_takes_pods_in_arrival_order_where_least_is_left() -> None:
    # In order: the 300 share goes to the small node (least cpu and GPU left after it); the
    # 2-GPU pod then fits only on the big node; the 700 share joins the 300 on its device,
    # the tightest that fits it on the node that has least left.
    pods = [share("a", 300), pod("pair", 2), share("b", 700)]
    placement, devices = best_fit_sharing_online(FLEET, pods)
    assert placement == {"a": "small", "pair": "big", "b": "small"}
    assert devices["a"] == [("small/gpu-0", 300)]
    assert devices["b"] == [("small/gpu-0", 700)]
    assert devices["pair"] == [("big/gpu-0", 1000), ("big/gpu-1", 1000)]
    # A whole GPU never goes to a device a share holds.
    placement, devices = best_fit_sharing_online([SMALL], [share("a", 300), pod("one", 1)])
    assert devices["one"] == [("small/gpu-1", 1000)]


def test_a_trace_that_ends_before_the_fleet_fills_repeats_under_new_names() -> None:
    pods = [share("a", 500), share("b", 500)]
    arrived = arrivals(repeated(pods), FLEET, shares=True)
    assert len(arrived) == 25  # 12.5 GPUs requested > 12
    assert [p.name for p in arrived[:5]] == ["a", "b", "a-r1", "b-r1", "a-r2"]
