"""Measured figures that tests hand to the reliability report.

A test calls ``record("scenario", "what", value)``; when the environment
variable ``RELIABILITY_FIGURES`` names a file (``make reliability`` sets it),
the figure is appended there as one JSON line. Otherwise nothing is written.
"""

from __future__ import annotations

import json
import os


def record(scenario: str, name: str, value: float | int | str) -> None:
    path = os.environ.get("RELIABILITY_FIGURES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"scenario": scenario, "name": name, "value": value}) + "\n")
