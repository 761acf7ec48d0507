"""Cold start to the first forecast, in a fresh interpreter (run by bench_forecast).

``python -m benchmarks.first_forecast FILE END``: FILE is a saved
``/api/v1/query_range`` answer; the process imports the service's forecast
stack, builds the forecast service as ``serve`` does (default settings, the
file in place of Prometheus) and forecasts every agent once. The caller times
the whole process: interpreter start, imports, JSON decoding, the fit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from scheduler_extender.adapters.prometheus.forecasting import Querier
from scheduler_extender.adapters.prometheus.response import (
    InstantSample,
    RangeSeries,
    parse_matrix,
)
from scheduler_extender.adapters.prometheus.wiring import forecast_service
from scheduler_extender.config import PrometheusSettings


class SavedAnswer:
    """A ``Querier`` that answers every range query with the saved file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        return parse_matrix(orjson.loads(self.path.read_bytes()))

    def query(self, promql: str, at: float | None = None) -> list[InstantSample]:
        return []

    def close(self) -> None:
        pass


def main() -> None:
    path, end = Path(sys.argv[1]), float(sys.argv[2])
    client: Querier = SavedAnswer(path)
    service = forecast_service(PrometheusSettings(), client=client)
    fit = service.forecast(end)
    print(len(fit.forecasts.agents))


if __name__ == "__main__":
    main()
