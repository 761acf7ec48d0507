"""The extender's ``preempt`` verb: refine kube-scheduler's preemption candidates.

What is dropped and why is in ``domain/packing/preemption.py``; among other
things, each candidate must pass the extender's own filter rules
(``extender.rules``) once its victims are gone. Victim lists are returned
unchanged for every node kept; an empty map means "do not preempt". Both
request shapes are accepted: full victim pods (``nodeCacheCapable: false``)
and victim UIDs (``true``), which are looked up in the extender's cache.
Either way, only victims the cache accounts on their candidate node give
room back, with the requests the cache accounts them with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.api import wire
from scheduler_extender.api.errors import client_error, validation_error
from scheduler_extender.domain.cluster import Snapshot
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.preemption import Refinement, refine_candidates
from scheduler_extender.domain.ports import ClusterView
from scheduler_extender.domain.shared import SharedCluster
from scheduler_extender.service.extender import Extender, StaleCacheError

log = logging.getLogger(__name__)


def add_preempt_route(
    app: FastAPI, extender: Extender, metrics: Metrics, url_prefix: str, agent_label: str
) -> None:
    schema = wire.ExtenderPreemptionArgs.model_json_schema(by_alias=True)
    extra = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}

    @app.post(f"{url_prefix}/preempt", openapi_extra=extra, tags=["extender"])
    async def preempt(request: Request) -> Response:
        start = time.perf_counter()
        response = _answer(await request.body(), extender, agent_label)
        metrics.request_duration.labels("preempt").observe(time.perf_counter() - start)
        return response

    def _answer(body: bytes, extender: Extender, agent_label: str) -> Response:
        try:
            args = wire.ExtenderPreemptionArgs.model_validate_json(body)
        except ValidationError as exc:
            metrics.decisions.labels("preempt", "bad_request").inc()
            return validation_error(exc)
        try:
            extender.require_fresh()
        except StaleCacheError as exc:
            # kube-scheduler reads any status but 200 as the extender's error: as
            # the extender is not ignorable, it preempts nothing and retries the pod.
            metrics.decisions.labels("preempt", "stale_cache").inc()
            return client_error(str(exc), status=503)
        pod = args.pod.to_domain(agent_label)
        uids: dict[str, list[str]] = {}
        violations: dict[str, int] = {}
        victims: dict[str, Sequence[Pod] | None] = {}
        if args.node_name_to_victims is not None:
            for node, full in args.node_name_to_victims.items():
                victims[node] = [v.to_domain(agent_label) for v in full.pods]
                uids[node] = [v.metadata.uid for v in full.pods]
                violations[node] = full.num_pdb_violations
        elif args.node_name_to_meta_victims is not None:
            for node, meta in args.node_name_to_meta_victims.items():
                uids[node] = [v.uid for v in meta.pods]
                victims[node] = _lookup(extender, uids[node])
                violations[node] = meta.num_pdb_violations
        else:
            metrics.decisions.labels("preempt", "bad_request").inc()
            return client_error("NodeNameToVictims: either it or NodeNameToMetaVictims must be set")
        snapshot, counted = _accounted(extender.cluster, uids, victims)
        refinement = refine_candidates(
            pod, victims, snapshot, rules=extender.rules, counted=counted
        )
        _log_dropped(pod, refinement)
        outcome = "refined" if refinement.dropped else "unchanged"
        metrics.decisions.labels("preempt", outcome).inc()
        reply = wire.ExtenderPreemptionResult(
            NodeNameToMetaVictims={
                node: wire.MetaVictims(
                    Pods=[wire.MetaPod(UID=uid) for uid in uids[node]],
                    NumPDBViolations=violations[node],
                )
                for node in refinement.kept
            }
        )
        return JSONResponse(reply.model_dump(by_alias=True))


def _accounted(
    cluster: ClusterView,
    uids: Mapping[str, Sequence[str]],
    victims: Mapping[str, Sequence[Pod] | None],
) -> tuple[Snapshot, dict[str, list[Pod]]]:
    """The snapshot, and per node the victims it counts there, as it counts them.

    Read under the writer lock, so that the placements match the snapshot.
    """
    counted: dict[str, list[Pod]] = {}
    with cluster.locked():
        snapshot = cluster.snapshot()
        for node, ids in uids.items():
            sent = {v.uid: v for v in victims.get(node) or ()}
            here: list[Pod] = []
            for uid in ids:
                if cluster.placement(uid) != node:
                    continue  # not counted there: evicting it frees nothing we track
                known = cluster.state.pod(uid) if isinstance(cluster, SharedCluster) else None
                found = known if known is not None else sent.get(uid)
                if found is not None:
                    here.append(found)
            counted[node] = here
    return snapshot, counted


def _log_dropped(pod: Pod, refinement: Refinement) -> None:
    if not refinement.dropped or not log.isEnabledFor(logging.DEBUG):
        return
    for node, why in refinement.dropped.items():
        unresolvable = node in refinement.unresolvable
        log.debug(
            "preempt %s: dropped candidate %s%s: %s",
            pod.key,
            node,
            " (unresolvable)" if unresolvable else "",
            why,
            extra={"pod": pod.key, "node": node, "unresolvable": unresolvable, "why": why},
        )


def _lookup(extender: Extender, uids: Sequence[str]) -> list[Pod] | None:
    """The victims by UID from the cache; None when any is unknown (or no cache to ask)."""
    cluster = extender.cluster
    if not isinstance(cluster, SharedCluster):
        return None
    with cluster.locked():
        found = [cluster.state.pod(uid) for uid in uids]
    if any(p is None for p in found):
        return None
    return [p for p in found if p is not None]
