from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scheduler_extender.adapters.prometheus.response import (
    PrometheusResponseError,
    RangeSeries,
    agent_of,
    batch_from_matrix,
    infer_step,
    instant_rates,
    parse_matrix,
    parse_vector,
)


def matrix(*series: tuple[dict[str, str], list[list[Any]]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": labels, "values": values} for labels, values in series],
        },
    }


def test_a_matrix_with_special_values_parses() -> None:
    body = matrix(({"agent": "a"}, [[100, "1.5"], [160.5, "NaN"], [220, "+Inf"]]))
    [series] = parse_matrix(body)
    assert dict(series.labels) == {"agent": "a"}
    assert series.timestamps.tolist() == [100.0, 160.5, 220.0]
    assert series.values[0] == 1.5
    assert np.isnan(series.values[1])
    assert np.isinf(series.values[2])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"status": "error", "errorType": "bad_data", "error": "parse error"}, "parse error"),
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "matrix"),
        ({"status": "success", "data": {"resultType": "matrix"}}, "result"),
        (matrix(({"agent": "a"}, [[1, "x"]])), "values"),
        (matrix(({"agent": "a"}, [[1]])), "values"),
        (matrix(({"agent": 3}, [])), "metric"),  # type: ignore[dict-item]
    ],
)
def test_malformed_answers_are_rejected_with_the_field(body: Any, message: str) -> None:
    with pytest.raises(PrometheusResponseError, match=message):
        parse_matrix(body)


def test_a_vector_parses_and_sums_per_agent() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"agent": "a", "job": "x"}, "value": [10, "2"]},
                {"metric": {"agent": "a", "job": "y"}, "value": [10, "3"]},
                {"metric": {"agent": "b"}, "value": [10, "NaN"]},
                {"metric": {}, "value": [10, "1"]},
            ],
        },
    }
    samples = parse_vector(body)
    assert len(samples) == 4
    assert dict(instant_rates(samples, "agent")) == {"a": 5.0, "{}": 1.0}
    with pytest.raises(PrometheusResponseError, match="value"):
        parse_vector(
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
        )


def test_agents_are_named_by_their_label_or_their_whole_label_set() -> None:
    assert agent_of({"agent": "x", "job": "j"}, "agent") == "x"
    assert agent_of({"job": "j", "instance": "i"}, "agent") == '{instance="i",job="j"}'


def series(labels: dict[str, str], stamps: list[float], values: list[float]) -> RangeSeries:
    return RangeSeries(labels, np.array(stamps), np.array(values))


def test_series_go_on_one_grid_and_duplicates_of_an_agent_add_up() -> None:
    data = [
        series({"agent": "b"}, [0, 60, 180], [1.0, 2.0, 4.0]),
        series({"agent": "a", "job": "x"}, [60, 120], [1.0, 1.0]),
        series({"agent": "a", "job": "y"}, [120, 180.4], [2.0, 5.0]),  # 180.4 snaps to 180
    ]
    assert infer_step(data) == 60.0
    batch = batch_from_matrix(data, agent_label="agent", step=60.0)
    assert batch.agents == ("a", "b")
    assert (batch.start, batch.end, batch.points) == (0.0, 180.0, 4)
    assert np.array_equal(batch.values[0], [np.nan, 1.0, 3.0, 5.0], equal_nan=True)
    assert np.array_equal(batch.values[1], [1.0, 2.0, np.nan, 4.0], equal_nan=True)


def test_an_explicit_grid_drops_samples_outside_it() -> None:
    data = [series({"agent": "a"}, [0, 60, 120, 180], [1.0, 2.0, 3.0, 4.0])]
    batch = batch_from_matrix(data, agent_label="agent", step=60.0, start=60.0, end=120.0)
    assert batch.values.tolist() == [[2.0, 3.0]]


def test_no_series_make_an_empty_batch_and_no_step() -> None:
    assert infer_step([series({"agent": "a"}, [5], [1.0])]) is None
    batch = batch_from_matrix([], agent_label="agent", step=60.0, start=0.0, end=600.0)
    assert batch.agents == ()
    assert batch.values.shape == (0, 11)
