"""Durations written the Prometheus way: ``90s``, ``15m``, ``1h30m``, ``2d``.

The CLI flags and the Prometheus settings take durations in this syntax (the
one users already write in PromQL); plain numbers mean seconds.
"""

from __future__ import annotations

import re

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
# The whole syntax, for JSON schemas (the Helm chart's values).
PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w|y))+$"


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError naming what is wrong."""
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        pos = 0
        seconds = 0.0
        for match in _PART.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value) or pos == 0:
            raise ValueError(
                f"invalid duration {text!r}: expected e.g. 30s, 15m, 1h30m, 2d"
            ) from None
    if seconds <= 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"invalid duration {text!r}: must be positive and finite")
    return seconds
