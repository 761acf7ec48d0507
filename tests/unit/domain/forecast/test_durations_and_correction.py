from __future__ import annotations

import math

import pytest

from scheduler_extender.domain.forecast.correction import corrected_rate, corrected_rates
from scheduler_extender.domain.forecast.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1.5", 1.5), ("30s", 30.0), ("15m", 900.0), ("1h30m", 5400.0),
     ("2d", 172800.0), ("1w", 604800.0), ("250ms", 0.25), (" 1d ", 86400.0)],
)  # fmt: skip
def test_durations_parse_the_prometheus_way(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "15x", "1h 30m", "-5m", "0s", "nan", "inf", "5m3"])
def test_bad_durations_are_rejected_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_correction_takes_the_observed_rate_only_when_it_exceeds_the_factor() -> None:
    assert corrected_rate(10.0, 19.0, 2.0) == 10.0  # within the factor: trust the forecast
    assert corrected_rate(10.0, 21.0, 2.0) == 21.0  # a burst: the larger, at once
    assert corrected_rate(10.0, 1.0, 2.0) == 10.0  # far below: the larger is the forecast
    assert corrected_rate(0.0, 0.5, 2.0) == 0.5  # a forecast of zero is corrected by any traffic
    assert corrected_rate(10.0, None, 2.0) == 10.0
    assert corrected_rate(10.0, math.nan, 2.0) == 10.0


def test_corrected_rates_add_agents_seen_only_now() -> None:
    rates = corrected_rates({"a": 1.0, "b": 5.0}, {"a": 4.0, "c": 2.0, "d": 0.0}, 2.0)
    assert dict(rates) == {"a": 4.0, "b": 5.0, "c": 2.0}
