"""Leader election through a ``coordination.k8s.io`` Lease (``kubernetes.leaderelection``).

The client's ``LeaderElection`` has no way to stop and no way to pass an
``ApiClient``; this wrapper adds both. While this process holds the Lease,
``lead(term)`` runs in a thread of its own; ``term`` is set the moment the
Lease is lost or the elector stops, and a new campaign begins only after
``lead`` has returned, so two terms never overlap in one process. On stop the
Lease is released (holder cleared, 1 s duration) so a standby takes over at
once instead of waiting out the lease duration.
"""

from __future__ import annotations

import datetime
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from scheduler_extender.config import LeaseSettings

log = logging.getLogger(__name__)


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """A component's Lease and identity, from its settings (validated there)."""

    name: str
    namespace: str
    identity: str  # also the component's name in the Events it writes
    lease_duration: int
    renew_deadline: int
    retry_period: int

    @staticmethod
    def of(settings: LeaseSettings) -> LeaseConfig:
        return LeaseConfig(
            name=settings.lease_name,
            namespace=settings.lease_namespace or own_namespace(),
            identity=settings.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
            lease_duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
        )


def own_namespace() -> str:
    """The pod's namespace in a cluster, else "default"."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class _StoppedError(Exception):
    """Raised inside the election loop to leave it."""


class _StoppableLock:
    """A LeaseLock whose ``get`` raises once the elector stops (the loop's only exit)."""

    def __init__(self, lock: LeaseLock, stopped: threading.Event) -> None:
        self._lock = lock
        self._stopped = stopped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lock, name)

    def get(self, name: str, namespace: str) -> Any:
        if self._stopped.is_set():
            raise _StoppedError
        return self._lock.get(name, namespace)


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        config: LeaseConfig,
        lead: Callable[[threading.Event], None],
        *,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._config = config
        self._lead = lead
        self._on_change = on_change
        self._stopped = threading.Event()
        self._leading = threading.Event()
        self._term = threading.Event()
        self._term_done = threading.Event()
        self._term_done.set()
        self._lease = LeaseLock(config.name, config.namespace, config.identity)
        self._lease.api_instance = client.CoordinationV1Api(api)
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._campaign, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._end_term()
        if self._thread is not None:
            self._thread.join(timeout)

    def _campaign(self) -> None:
        cfg = self._config
        lock = _StoppableLock(self._lease, self._stopped)
        election = electionconfig.Config(
            lock, cfg.lease_duration, cfg.renew_deadline, cfg.retry_period,
            onstarted_leading=self._start_term, onstopped_leading=self._end_term,
        )  # fmt: skip
        while not self._stopped.is_set():
            try:
                # Returns when the lease could not be renewed (onstopped_leading has run).
                leaderelection.LeaderElection(election).run()
            except _StoppedError:
                break
            except Exception as exc:  # the API server unreachable, mostly: no traceback
                log.warning("leader election failed (%s); campaigning again", exc)
                self._end_term()
                self._stopped.wait(cfg.retry_period)
        self._end_term()
        self._release()

    def _start_term(self) -> None:
        """Runs in the client's thread for as long as this term lasts."""
        self._term = threading.Event()
        self._term_done.clear()
        self._leading.set()
        log.info("%s became the leader (lease %s/%s)", *self._names())
        self._notify(True)
        try:
            self._lead(self._term)
        finally:
            self._term_done.set()

    def _end_term(self) -> None:
        if self._leading.is_set():
            log.warning("%s stopped leading (lease %s/%s)", *self._names())
            self._leading.clear()
            self._notify(False)
        self._term.set()
        # Campaign again only once the work of the old term has stopped.
        if not self._term_done.wait(timeout=60.0):
            log.error("the work of the last leader term has not stopped after 60 s")

    def _release(self) -> None:
        now = str(datetime.datetime.now())
        record = LeaderElectionRecord("", "1", now, now)
        try:
            found, held = self._lease.get(self._config.name, self._config.namespace)
            # Release only a lease that is still ours: a successor's must stay.
            if found and held.holder_identity == self._config.identity:
                self._lease.update(self._config.name, self._config.namespace, record)
                log.info("%s released the lease %s/%s", *self._names())
        except Exception as exc:
            log.warning("could not release the lease: %s", exc)

    def _notify(self, leading: bool) -> None:
        if self._on_change is not None:
            self._on_change(leading)

    def _names(self) -> tuple[str, str, str]:
        return self._config.identity, self._config.namespace, self._config.name


class Unelected:
    """Leads at once and for as long as it runs: ``LeaderElector``'s stand-in without election."""

    def __init__(self, lead: Callable[[threading.Event], None], *, name: str) -> None:
        self._lead = lead
        self._name = name
        self._term = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return not self._term.is_set()  # until stopped

    def start(self) -> None:
        self._term = threading.Event()
        self._thread = threading.Thread(
            target=self._lead, args=(self._term,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._term.set()
        if self._thread is not None:
            self._thread.join(timeout)


def leadership(
    api: client.ApiClient,
    lease: LeaseConfig | None,
    lead: Callable[[threading.Event], None],
    *,
    name: str,
    on_change: Callable[[bool], None] | None = None,
) -> LeaderElector | Unelected:
    """Who runs ``lead``: an elector on ``lease``, or (no lease) this process alone."""
    if lease is None:
        if on_change is not None:
            on_change(True)
        return Unelected(lead, name=name)
    return LeaderElector(api, lease, lead, on_change=on_change)
