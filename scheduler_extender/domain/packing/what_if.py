"""The extender's own filter on candidate nodes, as if some of their pods were gone.

Used by the ``preempt`` verb: kube-scheduler proposes victims by its own
accounting, but once they leave, the preemptor still has to pass *our*
filter. Rather than restating its rules, this runs ``filter_nodes`` itself on
a what-if snapshot: the candidate nodes only, each with its victims' requests
given back and its victims no longer counted as replicas of their agents.
Every rule the filter applies therefore applies here too: capacity by our
accounting, ``max_agent_replicas_per_node``, a packing plan's reservations
(checked against the freed room), and whatever the filter checks next.

The caller passes only victims the snapshot counts on that node (including
pods we assumed after our own binds): giving back the requests of a pod the
snapshot does not count would free room our accounting never took.

A rejection is *unresolvable* when no eviction on the node could ever lift
it: the node's total capacity is below the request (as the filter says), or
a packing plan reserved other nodes for the preemptor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from scheduler_extender.domain.cluster import NodeState, Snapshot, columns_of
from scheduler_extender.domain.filtering import FilterRules, Reason, Rejection, filter_nodes
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.reservations import ReservationBook
from scheduler_extender.domain.resources import Resources


def rejected_after_eviction(
    pod: Pod, evicted: Mapping[str, Iterable[Pod]], snapshot: Snapshot, rules: FilterRules
) -> dict[str, Rejection]:
    """Candidates (the keys of ``evicted``) our filter still refuses once their victims are gone."""
    what_if = without(snapshot, evicted)
    failed = filter_nodes(pod, list(evicted), what_if, rules).failed
    book = ReservationBook.published(snapshot)
    planned = {r.node for r in book.reservations if r.matches(pod)}
    return {
        node: _never(rejection)
        if rejection.reason is Reason.RESERVED and planned and node not in planned
        else rejection
        for node, rejection in failed.items()
    }


def without(snapshot: Snapshot, evicted: Mapping[str, Iterable[Pod]]) -> Snapshot:
    """The snapshot cut down to the known nodes among ``evicted``, each without its pods.

    Everything else the snapshot carries (its rules, e.g. reservations) is kept as is.
    """
    states = {
        node: _without(state, pods)
        for node, pods in evicted.items()
        if (state := snapshot.nodes.get(node)) is not None
    }
    return dataclasses.replace(snapshot, nodes=MappingProxyType(states), columns=columns_of(states))


def _without(state: NodeState, pods: Iterable[Pod]) -> NodeState:
    unique = {p.uid: p for p in pods}.values()  # a victim listed twice leaves once
    if not unique:
        return state
    requested = dict(state.requested.amounts)
    free = dict(state.free_amounts)
    agents = dict(state.agents)
    for pod in unique:
        for resource, amount in pod.requests.amounts.items():
            requested[resource] = requested.get(resource, 0) - amount
            free[resource] = free.get(resource, 0) + amount
        if pod.agent and pod.agent in agents:
            agents[pod.agent] -= 1
            if agents[pod.agent] <= 0:
                del agents[pod.agent]
    return dataclasses.replace(
        state,
        requested=Resources.of(requested),
        agents=MappingProxyType(agents),
        free_amounts=MappingProxyType(free),
    )


def _never(rejection: Rejection) -> Rejection:
    return Rejection(rejection.reason, rejection.message, True)
