"""A model too big for the budget is solved on a neighbourhood of nodes."""

from __future__ import annotations

from scheduler_extender.domain.packing.checker import check_plan
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.policy import PackingPolicy
from scheduler_extender.domain.packing.solver import SolveOptions
from tests.unit.domain.packing.scenarios import node, pod

POLICY = PackingPolicy()


def fragmented(nodes: int, pending: int) -> tuple[list, list]:  # type: ignore[type-arg]
    """Every node half full of low-priority GPU pods; pending pods need whole nodes."""
    cluster = [node(f"n{i:02d}", gpu=8, cpu=32) for i in range(nodes)]
    pods = [pod(f"low-{i:02d}", gpu=4, on=f"n{i:02d}", owner="low") for i in range(nodes)]
    pods += [pod(f"high-{i:02d}", gpu=8, priority=10, owner="high") for i in range(pending)]
    return cluster, pods


def test_a_neighbourhood_plan_is_valid_improves_and_claims_no_proof() -> None:
    nodes, pods = fragmented(30, 20)
    options = SolveOptions(time_limit=2.0, workers=1, max_variables=40)
    plan = pack(nodes, pods, policy=POLICY, options=options)
    assert check_plan(plan, nodes, pods, POLICY) == []
    assert plan.improves_on_default
    assert plan.stats.stages[0].scope_nodes < 30
    # Proofs from a neighbourhood are not proofs for the cluster: only the last,
    # widened scope may claim one, and only if it covers every node.
    assert plan.stats.scope_nodes == 30 or not plan.optimal


def test_the_whole_cluster_is_modelled_when_it_fits_the_budget() -> None:
    nodes, pods = fragmented(30, 20)
    plan = pack(nodes, pods, policy=POLICY, options=SolveOptions(time_limit=10.0, workers=1))
    assert plan.stats.scope_nodes == 30
    # Every high-priority pod gets a node; half of the others must then go.
    assert [(t.placed_after, t.evictions, t.proven_optimal) for t in plan.tiers] == [
        (20, 0, True),
        (20, 10, True),
    ]
