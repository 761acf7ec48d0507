"""A pod refused on a view that lagged kube-scheduler's is asked back once the view catches up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from scheduler_extender.domain.filtering import FilterRules
from scheduler_extender.domain.objects import Pod
from scheduler_extender.service.requeue import MAX_CHECKS, Refusals, Requeued, Requeuer
from tests.builders import node, pod
from tests.unit.conftest import Harness, make_harness

SOLO = pod("solo-0", agent="solo", node="n1")
EXTRA = pod("solo-extra", agent="solo")
WINDOW = 2.0


@dataclass
class FakeToucher:
    """Stands in for the API server's pod patch."""

    touched: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    fail: bool = False

    async def touch(self, p: Pod) -> bool:
        if self.fail:
            raise OSError("connection refused")
        if p.uid in self.gone:
            return False
        self.touched.append(p.name)
        return True


def one_node_full_of_solo() -> Harness:
    """n1 holds the one replica of agent "solo" its limit allows."""
    h = make_harness(rules=FilterRules(max_agent_replicas_per_node=1))
    h.extender.refusals = Refusals(window=WINDOW, clock=h.clock)
    with h.cluster.locked():
        h.cluster.state.upsert_node(node("n1", 8))
        h.cluster.state.upsert_pod(SOLO)
        h.cluster.publish_locked()
    return h


def requeuer(h: Harness, toucher: FakeToucher, outcomes: list[Requeued]) -> Requeuer:
    return Requeuer(
        h.extender.refusals,
        h.cluster,
        passes_now=lambda p, nodes: bool(h.extender.feasible(p, nodes).passed),
        toucher=toucher,
        interval=0.01,
        on_requeue=outcomes.append,
    )


def refuse_then(h: Harness, toucher: FakeToucher, change: str, wait: float = 0.1) -> list[Requeued]:
    """Filter EXTRA (refused), apply ``change`` to the cache, let the requeuer look."""
    outcomes: list[Requeued] = []

    async def scenario() -> None:
        assert (await h.extender.filter(EXTRA, ["n1"])).passed == []
        task = asyncio.create_task(requeuer(h, toucher, outcomes).run())
        await asyncio.sleep(0.03)
        with h.cluster.locked():
            if change == "delete the replica":
                h.cluster.state.delete_pod(SOLO.uid)
            elif change == "unrelated":
                h.cluster.state.upsert_node(node("n9", 8))
            elif change == "bind the pod":
                h.cluster.state.upsert_pod(replace(EXTRA, node_name="n1"))
                h.cluster.state.delete_pod(SOLO.uid)
            h.cluster.publish_locked()
        await asyncio.sleep(wait)
        task.cancel()

    asyncio.run(scenario())
    return outcomes


def test_a_refused_pod_is_touched_once_the_refused_node_would_pass() -> None:
    h, toucher = one_node_full_of_solo(), FakeToucher()
    assert refuse_then(h, toucher, "delete the replica") == [Requeued.TOUCHED]
    assert toucher.touched == ["solo-extra"]  # once, though the requeuer kept looking


def test_a_change_that_leaves_the_refusal_standing_touches_nothing() -> None:
    h, toucher = one_node_full_of_solo(), FakeToucher()
    assert refuse_then(h, toucher, "unrelated") == []
    assert len(h.extender.refusals) == 1  # still watched within its window


def test_a_pod_placed_meanwhile_is_not_touched() -> None:
    h, toucher = one_node_full_of_solo(), FakeToucher()
    assert refuse_then(h, toucher, "bind the pod") == []


def test_a_refusal_older_than_the_window_is_forgotten() -> None:
    h = one_node_full_of_solo()
    asyncio.run(h.extender.filter(EXTRA, ["n1"]))
    h.clock.now += WINDOW + 0.1
    assert h.extender.refusals.lifted(lambda p, nodes: True) == []
    assert len(h.extender.refusals) == 0


def test_a_later_filter_that_passes_drops_the_refusal() -> None:
    h = one_node_full_of_solo()
    asyncio.run(h.extender.filter(EXTRA, ["n1"]))
    with h.cluster.locked():
        h.cluster.state.upsert_node(node("n2", 8))
        h.cluster.publish_locked()
    assert asyncio.run(h.extender.filter(EXTRA, ["n2"])).passed == ["n2"]
    assert len(h.extender.refusals) == 0


def test_a_filter_that_passes_some_nodes_records_no_refusal() -> None:
    h = one_node_full_of_solo()
    with h.cluster.locked():
        h.cluster.state.upsert_node(node("n2", 8))
        h.cluster.publish_locked()
    outcome = asyncio.run(h.extender.filter(EXTRA, ["n1", "n2"]))
    assert outcome.passed == ["n2"]
    assert list(outcome.failed) == ["n1"]
    assert len(h.extender.refusals) == 0


def test_pods_of_other_schedulers_and_a_zero_window_are_not_recorded() -> None:
    h = one_node_full_of_solo()
    asyncio.run(h.extender.filter(pod("f", agent="solo", scheduler="other"), ["n1"]))
    assert len(h.extender.refusals) == 0
    h.extender.refusals = Refusals(window=0.0)
    asyncio.run(h.extender.filter(EXTRA, ["n1"]))
    assert len(h.extender.refusals) == 0


def test_a_pod_gone_or_an_api_error_is_counted_not_raised() -> None:
    h, toucher = one_node_full_of_solo(), FakeToucher(gone={EXTRA.uid})
    assert refuse_then(h, toucher, "delete the replica") == [Requeued.GONE]
    h, toucher = one_node_full_of_solo(), FakeToucher(fail=True)
    assert refuse_then(h, toucher, "delete the replica") == [Requeued.ERROR]


def test_a_refusal_is_looked_at_a_bounded_number_of_times() -> None:
    h = one_node_full_of_solo()
    asyncio.run(h.extender.filter(EXTRA, ["n1"]))
    looks: list[str] = []

    def still_refused(p: Pod, nodes: tuple[str, ...]) -> bool:
        looks.append(p.name)
        return False

    for _ in range(MAX_CHECKS + 3):
        assert h.extender.refusals.lifted(still_refused) == []
    assert len(looks) == MAX_CHECKS
    assert len(h.extender.refusals) == 0
