"""The solver against exhaustive enumeration, and every plan against the checker."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from scheduler_extender.domain.packing.checker import check_plan
from scheduler_extender.domain.packing.packer import pack
from scheduler_extender.domain.packing.plan import Plan
from scheduler_extender.domain.packing.solver import SolveOptions
from tests.unit.domain.packing.instances import Instance, brute_force, instances

# Tiny models solve in milliseconds; the generous limit only keeps a slow CI
# machine from turning a proof into a time-out.
PROVING = SolveOptions(time_limit=10.0, workers=1)


def _pack(instance: Instance, options: SolveOptions) -> Plan:
    return pack(
        instance.nodes,
        instance.pods,
        policy=instance.policy,
        options=options,
        budgets=instance.budgets,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_every_tier_matches_the_brute_force_optimum(instance: Instance) -> None:
    plan = _pack(instance, PROVING)
    assert plan.optimal, plan.stats.stages
    got = tuple((-t.evictions, t.placed_after, -t.moves) for t in plan.tiers)
    assert got == brute_force(instance, [t.priority for t in plan.tiers])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_tiny_plans_pass_the_independent_checker(instance: Instance) -> None:
    plan = _pack(instance, PROVING)
    assert check_plan(plan, instance.nodes, instance.pods, instance.policy, instance.budgets) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_nodes=6, max_pods=14))
def test_time_limited_plans_pass_the_independent_checker(instance: Instance) -> None:
    # Short limits leave stages unproven: the plan must be valid all the same.
    plan = _pack(instance, SolveOptions(time_limit=0.05, workers=1))
    assert check_plan(plan, instance.nodes, instance.pods, instance.policy, instance.budgets) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_nodes=5, max_pods=10))
def test_a_higher_tier_is_never_traded_for_a_lower_one(instance: Instance) -> None:
    plan = _pack(instance, SolveOptions(time_limit=2.0, workers=1))
    for tier in plan.tiers:
        # The first tier that differs from the default placement must be better.
        if tier.placed_after != tier.placed_default:
            assert tier.placed_after > tier.placed_default, plan.to_json()["tiers"]
            break
        # Until then nothing may have been given up: no evictions at all.
        assert tier.evictions == 0, plan.to_json()["tiers"]
