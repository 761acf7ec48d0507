"""Debug endpoints (off by default): explain how a pod's nodes are scored."""

from __future__ import annotations

from fastapi import FastAPI, Query
from starlette.responses import JSONResponse, Response

from scheduler_extender.api.errors import client_error
from scheduler_extender.service.extender import Extender


def add_debug_routes(app: FastAPI, extender: Extender) -> None:
    @app.get("/debug/scores", tags=["debug"])
    async def scores(
        pod: str = Query(description="the pod as namespace/name", max_length=512),
        limit: int = Query(default=50, ge=1, le=10_000),
    ) -> Response:
        namespace, sep, name = pod.partition("/")
        if not sep or not namespace or not name:
            return client_error("pod: expected namespace/name")
        found = extender.cluster.find_pod(namespace, name)
        if found is None:
            return client_error(f"pod: {pod} is not in the cache", 404)
        nodes = list(extender.cluster.snapshot().nodes)
        verdict = extender.feasible(found, nodes)
        table = extender.prioritize(found, verdict.passed, explain=True)
        ranked = sorted(range(len(table.hosts)), key=lambda i: table.scores[i], reverse=True)
        return JSONResponse(
            {
                "pod": found.key,
                "agent": found.agent,
                "popularity": extender.popularity.current().rate(found.agent),
                "scores": [
                    {
                        "node": table.hosts[i],
                        "score": table.scores[i],
                        "contributions": {k: v[i] for k, v in table.contributions.items()},
                    }
                    for i in ranked[:limit]
                ],
                "rejected": {n: r.message for n, r in list(verdict.failed.items())[:limit]},
            }
        )
