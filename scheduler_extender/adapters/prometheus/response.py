"""Parsing Prometheus HTTP API answers (``/api/v1/query_range`` and ``/api/v1/query``).

The shape is documented at https://prometheus.io/docs/prometheus/latest/querying/api/:
``{"status": "success", "data": {"resultType": "matrix", "result": [{"metric":
{...}, "values": [[<unix seconds>, "<value>"], ...]}]}}``; a vector has one
``"value"`` pair per series instead. Values are strings so that ``NaN`` and
``+Inf`` survive JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from scheduler_extender.domain.forecast.series import FloatArray, SeriesBatch


class PrometheusResponseError(ValueError):
    """The body is not a Prometheus API answer of the expected kind."""


@dataclass(frozen=True, slots=True)
class RangeSeries:
    labels: Mapping[str, str]
    timestamps: FloatArray
    values: FloatArray


@dataclass(frozen=True, slots=True)
class InstantSample:
    labels: Mapping[str, str]
    timestamp: float
    value: float


def _result(body: Any, expected: str) -> list[Any]:
    if not isinstance(body, dict):
        raise PrometheusResponseError("expected a JSON object with 'status' and 'data'")
    if body.get("status") != "success":
        error = body.get("error") or "no error message"
        raise PrometheusResponseError(
            f"Prometheus answered status {body.get('status')!r}: {body.get('errorType', '')} {error}".strip()
        )
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        raise PrometheusResponseError("data.result: expected a list")
    if data.get("resultType") != expected:
        raise PrometheusResponseError(
            f"data.resultType: expected {expected!r}, got {data.get('resultType')!r}"
        )
    result: list[Any] = data["result"]
    return result


def _labels(item: Any, index: int) -> Mapping[str, str]:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
    ):
        raise PrometheusResponseError(f"data.result[{index}].metric: expected string labels")
    return MappingProxyType(dict(metric))


def parse_matrix(body: Any) -> list[RangeSeries]:
    """The series of a ``query_range`` answer; raises PrometheusResponseError."""
    series = []
    for i, item in enumerate(_result(body, "matrix")):
        labels = _labels(item, i)
        pairs = item.get("values")
        if not isinstance(pairs, list):
            raise PrometheusResponseError(f"data.result[{i}].values: expected a list")
        try:
            # Two flat passes: much faster than an object array of the pairs.
            stamps = np.fromiter((p[0] for p in pairs), np.float64, len(pairs))
            values = np.array([p[1] for p in pairs], dtype=np.float64)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise PrometheusResponseError(
                f'data.result[{i}].values: expected [timestamp, "value"] pairs ({exc})'
            ) from None
        series.append(RangeSeries(labels, stamps, values))
    return series


def parse_vector(body: Any) -> list[InstantSample]:
    """The samples of an instant ``query`` answer; raises PrometheusResponseError."""
    samples = []
    for i, item in enumerate(_result(body, "vector")):
        labels = _labels(item, i)
        pair = item.get("value")
        try:
            stamp, value = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise PrometheusResponseError(
                f'data.result[{i}].value: expected a [timestamp, "value"] pair'
            ) from None
        samples.append(InstantSample(labels, stamp, value))
    return samples


def agent_of(labels: Mapping[str, str], agent_label: str) -> str:
    """The agent a series belongs to; the whole label set when the label is missing."""
    name = labels.get(agent_label)
    if name is not None:
        return name
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def instant_rates(samples: Iterable[InstantSample], agent_label: str) -> Mapping[str, float]:
    """Current value per agent (series of one agent are summed; NaN and Inf dropped)."""
    rates: dict[str, float] = {}
    for sample in samples:
        if np.isfinite(sample.value):
            agent = agent_of(sample.labels, agent_label)
            rates[agent] = rates.get(agent, 0.0) + sample.value
    return MappingProxyType(rates)


def infer_step(series: Sequence[RangeSeries]) -> float | None:
    """The grid step of a range answer: the smallest gap between consecutive samples."""
    gaps = [np.diff(s.timestamps) for s in series if s.timestamps.size > 1]
    positive = [g[g > 0] for g in gaps]
    smallest = [float(g.min()) for g in positive if g.size]
    return round(min(smallest), 3) if smallest else None


def batch_from_matrix(
    series: Sequence[RangeSeries],
    *,
    agent_label: str,
    step: float,
    start: float | None = None,
    end: float | None = None,
) -> SeriesBatch:
    """Put range series on one grid, one row per agent.

    The grid spans ``start``..``end`` (default: the earliest and latest
    sample). Series of one agent (e.g. from two Prometheus jobs) are summed
    where any of them has a value.
    """
    stamps = [s.timestamps for s in series if s.timestamps.size]
    if start is None:
        start = min((float(t.min()) for t in stamps), default=0.0)
    if end is None:
        end = max((float(t.max()) for t in stamps), default=start)
    points = max(1, round((end - start) / step) + 1)
    rows: dict[str, FloatArray] = {}
    for s in series:
        index = np.rint((s.timestamps - start) / step).astype(np.int64)
        keep = (index >= 0) & (index < points) & np.isfinite(s.values)
        agent = agent_of(s.labels, agent_label)
        row = rows.setdefault(agent, np.full(points, np.nan))
        at = index[keep]
        row[at] = np.where(np.isnan(row[at]), 0.0, row[at]) + s.values[keep]
    agents = tuple(sorted(rows))
    values = np.array([rows[a] for a in agents]).reshape(len(agents), points)
    return SeriesBatch(agents, start, step, values)
