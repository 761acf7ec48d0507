"""The parts of a process, started in order, ready together, stopped in reverse.

``serve`` (cache, forecast, background packer) and ``controller`` (probe
server, reconcile loop, its forecast) add their parts to one ``Manager``; its
``checks`` feed ``/readyz`` (``api/health.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from scheduler_extender.api.health import Probe

log = logging.getLogger(__name__)


class Runnable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    runnable: Runnable
    ready: Probe | None


class Manager:
    def __init__(self) -> None:
        self._parts: list[_Part] = []
        self._started: list[_Part] = []

    def add(self, name: str, runnable: Runnable, *, ready: Probe | None = None) -> None:
        """Start ``runnable`` after those added before; ``ready`` reports under ``name``."""
        self._parts.append(_Part(name, runnable, ready))

    def checks(self) -> dict[str, Probe]:
        return {p.name: p.ready for p in self._parts if p.ready is not None}

    def start(self) -> None:
        """Start every part in order; if one fails, stop those started and raise."""
        for part in self._parts:
            try:
                part.runnable.start()
            except BaseException:
                self.stop()
                raise
            self._started.append(part)

    def stop(self) -> None:
        """Stop the started parts, last first; one failing to stop does not keep the rest up."""
        while self._started:
            part = self._started.pop()
            try:
                part.runnable.stop()
            except Exception:
                log.exception("stopping %s failed", part.name)

    def __enter__(self) -> Manager:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
