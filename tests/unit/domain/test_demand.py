"""The demand a cluster learns from its GPU pods: shapes, constraints, recent and pending."""

from __future__ import annotations

import dataclasses

from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.demand import (
    ANY_GPU,
    DemandBook,
    DemandClass,
    GpuConstraint,
    demand_class,
    gpu_constraint,
)
from scheduler_extender.domain.objects import Requirement, SelectorTerm
from tests.builders import GPU, GPU_PRODUCT, node, pod

T4 = {GPU_PRODUCT: "T4"}
A100 = {GPU_PRODUCT: "A100"}


def test_a_pod_without_gpu_labels_in_its_selection_takes_any_gpu() -> None:
    plain = pod("p", 1, node_selector={"kubernetes.io/os": "linux"})
    assert gpu_constraint(plain) == ANY_GPU
    assert ANY_GPU.admits({})
    assert ANY_GPU.unconstrained


def test_node_selector_and_affinity_on_gpu_labels_constrain_the_model() -> None:
    by_selector = gpu_constraint(pod("p", 1, node_selector={**T4, "zone": "a"}))
    assert by_selector.selector == ((GPU_PRODUCT, "T4"),)  # the zone is not about GPUs
    assert by_selector.admits(T4)
    assert not by_selector.admits(A100)
    by_affinity = gpu_constraint(pod("q", 1, gpu_models=["T4", "P100"]))
    assert by_affinity.admits(T4)
    assert by_affinity.admits({GPU_PRODUCT: "P100"})
    assert not by_affinity.admits(A100)
    assert not by_affinity.admits({})


def test_an_affinity_term_that_says_nothing_of_gpus_leaves_any_gpu_allowed() -> None:
    t4_term = SelectorTerm((Requirement(GPU_PRODUCT, "In", ("T4",)),))
    zone_term = SelectorTerm((Requirement("zone", "In", ("a",)),))
    base = pod("p", 1)
    either = dataclasses.replace(base, required_affinity=(t4_term, zone_term))
    assert gpu_constraint(either).unconstrained
    only_t4 = dataclasses.replace(base, required_affinity=(t4_term,))
    assert not gpu_constraint(only_t4).unconstrained


def test_shapes_round_cpu_and_memory_up_and_skip_pods_without_gpus() -> None:
    assert demand_class(pod("cpu-only", 0), GPU) is None
    shape = demand_class(pod("p", 2, cpu="33", memory="100Gi"), GPU)
    assert shape is not None
    assert shape.gpus == 2
    assert 33_000 <= shape.cpu <= 33_000 * 1.2
    assert 100 * 2**30 <= shape.memory <= 100 * 2**30 * 1.2
    # Requests a few percent apart make one shape.
    other = demand_class(pod("q", 2, cpu="33.5", memory="101Gi"), GPU)
    assert other == shape


def test_the_book_remembers_the_last_pods_and_counts_pending_ones_again() -> None:
    book = DemandBook(memory=3)
    one, eight = DemandClass(1), DemandClass(8)
    for shape in (eight, one, one, one):  # the 8-GPU pod falls out of the memory
        book.arrived(shape)
    assert dict(zip(book.freeze().classes, book.freeze().weights, strict=True)) == {one: 3.0}
    book.set_pending("u", eight)
    demand = book.freeze()
    assert dict(zip(demand.classes, demand.weights, strict=True)) == {one: 3.0, eight: 1.0}
    book.set_pending("v", one)  # only a weight changes: the same classes, the same object
    assert book.freeze().classes is demand.classes
    book.set_pending("u", None)
    assert book.freeze().classes == (one,)


def test_the_book_keeps_the_heaviest_shapes_only() -> None:
    book = DemandBook(max_classes=2)
    one, two, eight = DemandClass(1), DemandClass(2), DemandClass(8)
    for shape in (one, one, one, two, eight):
        book.arrived(shape)
    assert set(book.freeze().classes) == {one, eight}  # 3 and 8 GPUs beat 2


def test_light_constrained_shapes_keep_their_models_demand_past_the_cut() -> None:
    t4, p100 = (GpuConstraint(selector=((GPU_PRODUCT, m),)) for m in ("T4", "P100"))
    book = DemandBook(max_classes=1)
    heavy = DemandClass(8)
    for cpu in (4000, 1000):
        book.arrived(DemandClass(1, cpu, constraint=t4))
    book.arrived(heavy)
    book.arrived(DemandClass(2, 2000, constraint=t4))
    book.arrived(DemandClass(1, 2000, constraint=p100))
    book.arrived(DemandClass(1, 500))  # unconstrained: priced by the heavy shapes already
    demand = book.freeze()
    assert dict(zip(demand.classes, demand.weights, strict=True)) == {
        heavy: 1.0,
        DemandClass(1, constraint=t4): 2.0,  # two pods, cpu set aside
        DemandClass(2, constraint=t4): 1.0,
        DemandClass(1, constraint=p100): 1.0,
    }


def test_cluster_demand_follows_arrivals_and_binds() -> None:
    state = ClusterState()
    state.upsert_node(node("n", 8))
    state.upsert_pod(pod("waiting", 2))
    state.upsert_pod(pod("running", 1, node="n"))
    state.upsert_pod(pod("cpu-only", 0))
    demand = state.snapshot().demand
    weights = {c.gpus: w for c, w in zip(demand.classes, demand.weights, strict=True)}
    assert weights == {2: 2.0, 1: 1.0}  # arrived and pending; arrived
    bound = pod("waiting", 2, node="n", uid=_uid(state, "waiting"))
    state.upsert_pod(bound)
    demand = state.snapshot().demand
    assert {c.gpus: w for c, w in zip(demand.classes, demand.weights, strict=True)} == {
        2: 1.0,
        1: 1.0,
    }


def _uid(state: ClusterState, name: str) -> str:
    found = state.find_pod("default", name)
    assert found is not None
    return found.uid
