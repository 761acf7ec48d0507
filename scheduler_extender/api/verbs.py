"""filter, prioritize, bind and preempt: the verbs kube-scheduler calls, on a short path.

kube-scheduler waits for filter and prioritize on its serial scheduling cycle,
so their cost is paid once per pod by the whole cluster. On ``make bench-e2e``
a GIL-holding profile (py-spy --gil) put about a sixth of the extender's CPU in
the framework layers around these handlers (middleware, routing, dependency
resolution). ``VerbRouter`` therefore answers the verbs' paths itself, in
front of the FastAPI application that serves everything else and documents the
verbs in its OpenAPI schema (``verb_openapi_paths``): one route table, one
parse, metrics and error path for all four.

What the framework did for these paths is done here: JSON errors naming the
field (400), a 500 with a JSON body for an unexpected error, and the request
metrics. The body size limit (413) wraps both, see ``api/limits.py``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter, not_
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from scheduler_extender.adapters.kube.schema import NodeView
from scheduler_extender.adapters.metrics import Metrics
from scheduler_extender.api import wire
from scheduler_extender.api.errors import client_error, validation_error
from scheduler_extender.domain.filtering import FilterOutcome
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.preemption import Refinement
from scheduler_extender.service import preempt as preemption
from scheduler_extender.service.extender import BindError, BindRequest, Extender, StaleCacheError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
_REASON = attrgetter("reason")
_MESSAGE = attrgetter("message")
_UNRESOLVABLE = attrgetter("unresolvable")
JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes

    @staticmethod
    def json(content: Any, status: int = 200) -> Reply:
        return Reply(status, orjson.dumps(content))

    @staticmethod
    def of(response: JSONResponse) -> Reply:
        return Reply(response.status_code, bytes(response.body))


class _BadRequestError(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


@dataclass
class Verbs:
    """The verbs as functions of the request body."""

    extender: Extender
    metrics: Metrics
    agent_label: str

    def routes(self, prefix: str) -> dict[str, tuple[str, Callable[[bytes], Awaitable[Reply]]]]:
        """path -> (verb, handler)."""
        return {
            f"{prefix}/filter": ("filter", self.filter),
            f"{prefix}/prioritize": ("prioritize", self.prioritize),
            f"{prefix}/bind": ("bind", self.bind),
            f"{prefix}/preempt": ("preempt", self.preempt),
        }

    async def filter(self, body: bytes) -> Reply:
        args = _parse(body, wire.ExtenderArgs)
        names, nodes = _sent_nodes(args)
        pod = args.pod.to_domain(self.agent_label)
        try:
            outcome = await self.extender.filter(pod, names, sent_nodes=nodes)
        except StaleCacheError as exc:
            # Our own failure: Error makes kube-scheduler retry (or skip us if ignorable).
            self.metrics.decisions.labels("filter", "stale_cache").inc()
            return Reply.json(wire.filter_result(error=str(exc)))
        self._count_rejections(outcome)
        verdict = "feasible" if outcome.passed else "none_feasible"
        self.metrics.decisions.labels("filter", verdict).inc()
        return Reply.json(_filter_reply(args, outcome))

    async def prioritize(self, body: bytes) -> Reply:
        args = _parse(body, wire.ExtenderArgs)
        names, nodes = _sent_nodes(args)
        pod = args.pod.to_domain(self.agent_label)
        scores = self.extender.prioritize(pod, names, sent_nodes=nodes)
        self.metrics.decisions.labels("prioritize", "scored").inc()
        # HostPriorityList: a bare JSON array.
        return Reply.json([{"Host": h, "Score": s} for h, s in scores.pairs()])

    async def bind(self, body: bytes) -> Reply:
        args = _parse(body, wire.ExtenderBindingArgs)
        request = BindRequest(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
        try:
            outcome = await self.extender.bind(request)
        except BindError as exc:
            log.warning("bind of %s/%s refused: %s", args.pod_namespace, args.pod_name, exc)
            self.metrics.binds.labels(exc.outcome).inc()
            self.metrics.decisions.labels("bind", "error").inc()
            if exc.outcome in ("insufficient", "conflict"):
                self.metrics.bind_conflicts.inc()
            # A failed bind is reported in the body: kube-scheduler then unreserves and retries.
            return Reply.json(wire.ExtenderBindingResult(Error=str(exc)).model_dump(by_alias=True))
        self.metrics.binds.labels(outcome).inc()
        self.metrics.decisions.labels("bind", "bound").inc()
        return Reply.json(wire.ExtenderBindingResult().model_dump(by_alias=True))

    async def preempt(self, body: bytes) -> Reply:
        args = _parse(body, wire.ExtenderPreemptionArgs)
        candidates = _candidates(args, self.agent_label)
        pod = args.pod.to_domain(self.agent_label)
        try:
            refinement = preemption.refine(self.extender, pod, candidates)
        except StaleCacheError as exc:
            # kube-scheduler reads any status but 200 as the extender's error: as
            # the extender is not ignorable, it preempts nothing and retries the pod.
            self.metrics.decisions.labels("preempt", "stale_cache").inc()
            return Reply.of(client_error(str(exc), status=503))
        _log_dropped(pod, refinement)
        outcome = "refined" if refinement.dropped else "unchanged"
        self.metrics.decisions.labels("preempt", outcome).inc()
        # Victim lists come back unchanged for every node kept; none kept: do not preempt.
        reply = wire.ExtenderPreemptionResult(
            NodeNameToMetaVictims={
                node: wire.MetaVictims(
                    Pods=[wire.MetaPod(UID=uid) for uid in candidates[node].uids],
                    NumPDBViolations=candidates[node].pod_disruption_violations,
                )
                for node in refinement.kept
            }
        )
        return Reply.json(reply.model_dump(by_alias=True))

    def _count_rejections(self, outcome: FilterOutcome) -> None:
        reasons = Counter(map(_REASON, outcome.failed.values()))
        for reason, count in reasons.items():
            self.metrics.nodes_filtered.labels(reason).inc(count)


def _parse(body: bytes, model: type[M]) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _BadRequestError(Reply.of(validation_error(exc))) from None


def _sent_nodes(args: wire.ExtenderArgs) -> tuple[list[str], list[Node]]:
    if args.node_names is not None:
        return args.node_names, []
    if args.nodes is None:
        raise _BadRequestError(
            Reply.of(client_error("NodeNames: either NodeNames or Nodes must be set"))
        )
    nodes: list[Node] = []
    for i, raw in enumerate(args.nodes.items):
        try:
            nodes.append(NodeView.model_validate(raw).to_domain())
        except ValidationError as exc:
            raise _BadRequestError(Reply.of(validation_error(exc, ("Nodes", "items", i)))) from None
    return [n.name for n in nodes], nodes


def _candidates(
    args: wire.ExtenderPreemptionArgs, agent_label: str
) -> dict[str, preemption.Candidate]:
    if args.node_name_to_victims is not None:
        return {
            node: preemption.Candidate(
                uids=[v.metadata.uid for v in full.pods],
                pod_disruption_violations=full.num_pdb_violations,
                pods=[v.to_domain(agent_label) for v in full.pods],
            )
            for node, full in args.node_name_to_victims.items()
        }
    if args.node_name_to_meta_victims is not None:
        return {
            node: preemption.Candidate(
                uids=[v.uid for v in meta.pods], pod_disruption_violations=meta.num_pdb_violations
            )
            for node, meta in args.node_name_to_meta_victims.items()
        }
    raise _BadRequestError(
        Reply.of(client_error("NodeNameToVictims: either it or NodeNameToMetaVictims must be set"))
    )


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


def _filter_reply(args: wire.ExtenderArgs, outcome: FilterOutcome) -> dict[str, Any]:
    # Thousands of names: split at C speed.
    rejected = outcome.failed
    pairs = list(zip(rejected, map(_MESSAGE, rejected.values()), strict=True))
    never = list(map(_UNRESOLVABLE, rejected.values()))
    failed = dict(compress(pairs, map(not_, never)))
    unresolvable = dict(compress(pairs, never))
    if args.node_names is not None:
        # Never null in node-cache mode: a null list would filter out every node.
        return wire.filter_result(
            node_names=outcome.passed, failed=failed, unresolvable=unresolvable
        )
    assert args.nodes is not None
    passed = set(outcome.passed)
    sent = [n for n in args.nodes.items if n.get("metadata", {}).get("name") in passed]
    return wire.filter_result(nodes=sent, failed=failed, unresolvable=unresolvable)


class VerbRouter:
    """ASGI: POSTs to the verbs' paths are answered here, everything else goes to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, tuple[str, Callable[[bytes], Awaitable[Reply]]]],
        metrics: Metrics,
    ) -> None:
        self.app = app
        self._routes = dict(routes)
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            reply = Reply.json({"error": f"{scope['method']} is not allowed here: use POST"}, 405)
            await _send(send, reply, (b"allow", b"POST"))
            return
        verb, handler = route
        start = time.perf_counter()
        reply = await self._answer(scope, receive, verb, handler)
        await _send(send, reply)
        self._metrics.request_duration.labels(verb).observe(time.perf_counter() - start)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        verb: str,
        handler: Callable[[bytes], Awaitable[Reply]],
    ) -> Reply:
        body = await _body(receive)
        try:
            return await handler(body)
        except _BadRequestError as bad:
            self._metrics.decisions.labels(verb, "bad_request").inc()
            return bad.reply
        except Exception:
            log.exception("unexpected error answering %s", scope["path"])
            self._metrics.decisions.labels(verb, "bad_request").inc()
            return Reply.json({"error": "internal error (logged by the extender)"}, 500)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away; whatever we answer is dropped
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, reply: Reply, *headers: tuple[bytes, bytes]) -> None:
    length = (b"content-length", str(len(reply.body)).encode())
    await send({"type": "http.response.start", "status": reply.status,
                "headers": [*JSON_HEADERS, length, *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": reply.body})


def verb_openapi_paths(prefix: str) -> dict[str, Any]:
    """The verbs' entries of the OpenAPI document (they are not FastAPI routes)."""

    def post(model: type[BaseModel], summary: str) -> dict[str, Any]:
        schema = model.model_json_schema(by_alias=True)
        return {
            "post": {
                "tags": ["extender"],
                "summary": summary,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                },
                "responses": {
                    "200": {"description": "the verb's result (errors of ours in its Error field)"},
                    "400": {"description": "invalid request; the error names the field"},
                    "413": {"description": "body over the size limit"},
                },
            }
        }

    return {
        f"{prefix}/filter": post(wire.ExtenderArgs, "Filter"),
        f"{prefix}/prioritize": post(wire.ExtenderArgs, "Prioritize"),
        f"{prefix}/bind": post(wire.ExtenderBindingArgs, "Bind"),
        f"{prefix}/preempt": post(wire.ExtenderPreemptionArgs, "Preempt"),
    }
