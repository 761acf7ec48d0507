"""A small client for the Prometheus HTTP API: instant and range queries.

Only the refresh loop calls it, never the request path. Every call has a
timeout; transport errors, 429 and 5xx answers are retried with exponential
backoff and jitter, other 4xx answers (a bad query) are not. Long ranges are
split into pages that stay under Prometheus's limit of 11,000 points per
series per query, and the pages are merged back per series.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import numpy as np
import orjson

from scheduler_extender.adapters.prometheus.response import (
    InstantSample,
    PrometheusResponseError,
    RangeSeries,
    parse_matrix,
    parse_vector,
)

# Prometheus refuses range queries returning more points per series than this.
MAX_POINTS_PER_QUERY = 11_000


class PrometheusError(Exception):
    """A query failed; the message says why."""


class PrometheusUnavailableError(PrometheusError):
    """Prometheus could not be reached or kept failing (worth retrying later)."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused the query or answered nonsense (retrying will not help)."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    url: str  # base URL, e.g. http://prometheus:9090 (a path prefix is kept)
    timeout: float = 10.0  # seconds, per attempt
    retries: int = 2  # further attempts after the first
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    backoff_max: float = 8.0
    username: str | None = None  # basic auth
    password: str | None = None
    bearer_token: str | None = None
    # Read before every request, so rotated tokens (e.g. projected service
    # account tokens) are picked up.
    bearer_token_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    max_points: int = MAX_POINTS_PER_QUERY


def tls_context(options: ClientOptions) -> ssl.SSLContext | bool:
    """What httpx should verify the server with."""
    if options.ca_file is None and options.cert_file is None:
        return not options.insecure_skip_verify
    context = ssl.create_default_context(
        cafile=str(options.ca_file) if options.ca_file is not None else None
    )
    if options.cert_file is not None:
        context.load_cert_chain(
            str(options.cert_file), str(options.key_file) if options.key_file else None
        )
    if options.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class PrometheusClient:
    def __init__(
        self,
        options: ClientOptions,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        """``transport`` replaces the network in tests; ``sleep`` waits between retries
        (the refresh loop passes one that returns early on shutdown)."""
        self.options = options
        auth = (
            httpx.BasicAuth(options.username, options.password or "")
            if options.username is not None
            else None
        )
        self._http = httpx.Client(
            base_url=options.url.rstrip("/"),
            timeout=options.timeout,
            auth=auth,
            verify=tls_context(options),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str, at: float | None = None) -> list[InstantSample]:
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = _number(at)
        body = self._get("/api/v1/query", params)
        try:
            return parse_vector(body)
        except PrometheusResponseError as exc:
            raise PrometheusQueryError(f"/api/v1/query: {exc}") from None

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        """Samples on the grid start, start+step, ... <= end, paged as needed."""
        if step <= 0 or end < start:
            raise ValueError("query_range needs step > 0 and end >= start")
        merged: dict[frozenset[tuple[str, str]], tuple[Mapping[str, str], list[RangeSeries]]] = {}
        page = step * self.options.max_points  # a page holds max_points grid points
        page_start = start
        while page_start <= end:
            page_end = min(page_start + page - step, end)
            params = {
                "query": promql,
                "start": _number(page_start),
                "end": _number(page_end),
                "step": _number(step),
            }
            body = self._get("/api/v1/query_range", params)
            try:
                page_series = parse_matrix(body)
            except PrometheusResponseError as exc:
                raise PrometheusQueryError(f"/api/v1/query_range: {exc}") from None
            for series in page_series:
                key = frozenset(series.labels.items())
                merged.setdefault(key, (series.labels, []))[1].append(series)
            page_start = page_start + page
        return [_concatenate(labels, parts) for labels, parts in merged.values()]

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        attempts = 1 + max(self.options.retries, 0)
        delay = self.options.backoff
        problem = ""
        for attempt in range(attempts):
            if attempt:
                # Full jitter: concurrent extenders do not retry in lockstep.
                self._sleep(random.uniform(0.5, 1.0) * min(delay, self.options.backoff_max))
                delay *= 2
            try:
                response = self._http.get(path, params=params, headers=self._auth_headers())
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                problem = f"HTTP {response.status_code}: {_error_text(response)}"
                continue
            if response.status_code >= 400:
                raise PrometheusQueryError(
                    f"{path} answered HTTP {response.status_code}: {_error_text(response)}"
                )
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise PrometheusQueryError(
                    f"{path} answered with a body that is not JSON"
                ) from None
        raise PrometheusUnavailableError(
            f"{self.options.url}{path} failed after {attempts} attempt(s): {problem}"
        )

    def _auth_headers(self) -> dict[str, str]:
        token = self.options.bearer_token
        if self.options.bearer_token_file is not None:
            try:
                token = self.options.bearer_token_file.read_text().strip()
            except OSError as exc:
                raise PrometheusQueryError(f"cannot read the bearer token file: {exc}") from None
        return {"Authorization": f"Bearer {token}"} if token else {}


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return response.text[:200]


def _concatenate(labels: Mapping[str, str], parts: list[RangeSeries]) -> RangeSeries:
    if len(parts) == 1:
        return parts[0]
    stamps = np.concatenate([p.timestamps for p in parts])
    values = np.concatenate([p.values for p in parts])
    stamps, first = np.unique(stamps, return_index=True)  # sorted; page edges deduplicated
    return RangeSeries(MappingProxyType(dict(labels)), stamps, values[first])
