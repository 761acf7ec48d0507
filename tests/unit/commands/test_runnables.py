"""The parts manager: start in order, stop in reverse, stop what started when one fails."""

from __future__ import annotations

import pytest

from scheduler_extender.commands.runnables import Manager


class Part:
    def __init__(self, name: str, log: list[str], *, fail_start: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_start = fail_start

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_parts_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    parts = Manager()
    for name in ("cache", "forecast", "packer"):
        parts.add(name, Part(name, log))
    with parts:
        assert log == ["start cache", "start forecast", "start packer"]
    assert log[3:] == ["stop packer", "stop forecast", "stop cache"]


def test_a_part_that_fails_to_start_stops_those_already_started() -> None:
    log: list[str] = []
    parts = Manager()
    parts.add("cache", Part("cache", log))
    parts.add("broken", Part("broken", log, fail_start=True))
    parts.add("never", Part("never", log))
    with pytest.raises(RuntimeError, match="broken cannot start"):
        parts.start()
    assert log == ["start cache", "stop cache"]


def test_a_part_that_fails_to_stop_does_not_keep_the_others_up() -> None:
    log: list[str] = []

    class Stuck(Part):
        def stop(self) -> None:
            raise RuntimeError("stuck")

    parts = Manager()
    parts.add("cache", Part("cache", log))
    parts.add("stuck", Stuck("stuck", log))
    parts.start()
    parts.stop()
    assert log == ["start cache", "start stuck", "stop cache"]


def test_readiness_checks_are_those_of_the_parts_that_have_one() -> None:
    parts = Manager()
    parts.add("cache", Part("cache", []), ready=lambda: (True, {"synced": True}))
    parts.add("packer", Part("packer", []))
    checks = parts.checks()
    assert list(checks) == ["cache"]
    assert checks["cache"]() == (True, {"synced": True})
