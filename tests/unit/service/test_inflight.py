"""The filter of pod N+1 decides on a view that holds pod N once kube-scheduler chose a node for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.service.extender import BindRequest
from scheduler_extender.service.inflight import InFlight, Settled, Waited
from tests.builders import node, pod
from tests.unit.conftest import Harness, make_harness

A = pod("a", agent="hot")
B = pod("b", agent="hot")


def never(_: Pod) -> bool:
    return False


def settle(flight: InFlight, p: Pod, watch: Callable[[Pod], bool] = never) -> Waited:
    return asyncio.run(flight.settle(p, watch))


def test_nothing_in_flight_means_no_wait() -> None:
    assert settle(InFlight(timeout=5.0), B) == Waited(Settled.NONE, 0.0)


def test_the_same_pod_filtered_again_does_not_wait_for_itself() -> None:
    flight = InFlight(timeout=5.0)
    flight.begin(A)
    assert settle(flight, A).settled is Settled.SAME_POD
    assert settle(flight, B).settled is Settled.NONE  # and it is no longer in flight


def test_a_bind_that_came_first_leaves_nothing_to_wait_for() -> None:
    flight = InFlight(timeout=5.0)
    flight.begin(A)
    flight.end(A.uid)
    assert settle(flight, B).settled is Settled.NONE


def test_the_next_filter_waits_until_the_bind_arrives() -> None:
    flight = InFlight(timeout=5.0)

    async def scenario() -> Waited:
        flight.begin(A)
        waiting = asyncio.create_task(flight.settle(B, never))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # still waiting for A's bind
        flight.end(A.uid)
        return await waiting

    waited = asyncio.run(scenario())
    assert waited.settled is Settled.BIND
    assert 0.1 <= waited.seconds < 1.0


def test_the_watch_showing_the_pod_placed_settles_it() -> None:
    flight = InFlight(timeout=5.0, poll=0.01)
    flight.begin(A)
    assert settle(flight, B, lambda p: p.uid == A.uid).settled is Settled.WATCH


def test_a_pod_that_never_binds_costs_one_bounded_wait() -> None:
    flight = InFlight(timeout=0.2, poll=0.01)
    flight.begin(A)
    waited = settle(flight, B)
    assert waited.settled is Settled.TIMEOUT
    assert 0.2 <= waited.seconds < 1.0
    assert settle(flight, B).settled is Settled.NONE  # A is given up, not waited for again


def agent_limit_harness(timeout: float) -> Harness:
    h = make_harness(rules=FilterRules(max_agent_replicas_per_node=1), in_flight_wait=timeout)
    with h.cluster.locked():
        for name in ("n1", "n2"):
            h.cluster.state.upsert_node(node(name, 8))
        for p in (A, B):
            h.cluster.state.upsert_pod(p)
        h.cluster.publish_locked()
    return h


def filter_b_while_a_binds(h: Harness) -> list[str]:
    """kube-scheduler's order when A's PreBind is slow: filter A, filter B, then bind A."""

    async def scenario() -> list[str]:
        assert (await h.extender.filter(A, ["n1", "n2"])).passed == ["n1", "n2"]
        filtering_b = asyncio.create_task(h.extender.filter(B, ["n1", "n2"]))
        await asyncio.sleep(0.05)
        await h.extender.bind(BindRequest("default", "a", A.uid, "n1"))
        return (await filtering_b).passed

    return asyncio.run(scenario())


def test_the_next_pods_filter_sees_the_previous_pod_on_its_node() -> None:
    # With the agent limit 1, B must not be offered A's node.
    assert filter_b_while_a_binds(agent_limit_harness(timeout=5.0)) == ["n2"]


def test_without_the_wait_the_next_filter_would_miss_the_previous_pod() -> None:
    # The control: what the filter answered before it waited (the window the wait closes).
    assert filter_b_while_a_binds(agent_limit_harness(timeout=0.0)) == ["n1", "n2"]


def test_pods_of_other_schedulers_are_never_in_flight() -> None:
    h = agent_limit_harness(timeout=5.0)
    foreign = pod("f", scheduler="other-scheduler")

    async def scenario() -> Waited:
        await h.extender.filter(foreign, ["n1"])
        return await h.extender.in_flight.settle(B, never)

    assert asyncio.run(scenario()).settled is Settled.NONE


def test_a_nomination_written_after_our_filter_settles_the_pod_on_its_node() -> None:
    h = agent_limit_harness(timeout=5.0)

    async def scenario() -> list[str]:
        await h.extender.filter(A, ["n1", "n2"])
        # kube-scheduler chose n1 and, before its slow PreBind, nominated A there.
        with h.cluster.locked():
            h.cluster.state.upsert_pod(replace(A, nominated_node_name="n1"))
            h.cluster.publish_locked()
        return (await h.extender.filter(B, ["n1", "n2"])).passed

    assert asyncio.run(scenario()) == ["n2"]
    assert h.cluster.placement(A.uid) == "n1"
    # A's bind then finds its room held, and binds.
    assert asyncio.run(h.extender.bind(BindRequest("default", "a", A.uid, "n1"))) == "bound"


def test_a_nomination_the_pod_already_had_is_no_answer() -> None:
    h = agent_limit_harness(timeout=0.2)
    preemptor = replace(A, nominated_node_name="n1")  # from an earlier preemption
    with h.cluster.locked():
        h.cluster.state.upsert_pod(preemptor)
        h.cluster.publish_locked()

    async def scenario() -> Waited:
        await h.extender.filter(preemptor, ["n1", "n2"])
        return await h.extender.in_flight.settle(B, h.extender._settled_by_watch)

    assert asyncio.run(scenario()).settled is Settled.TIMEOUT
    assert h.cluster.placement(A.uid) is None
