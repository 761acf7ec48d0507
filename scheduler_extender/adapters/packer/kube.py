"""The packer's calls to the API server, and its view of the watch-fed cache."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from scheduler_extender.adapters.kube.cache import ClusterCache
from scheduler_extender.adapters.kube.events import EventPoster, ObjectRef
from scheduler_extender.adapters.packer.schema import budget_from_json
from scheduler_extender.domain.objects import Node, Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget
from scheduler_extender.domain.packing.ports import Eviction
from scheduler_extender.domain.packing.reservations import ReservationBook

log = logging.getLogger(__name__)

COMPONENT = "scheduler-extender-packer"


class CacheObjects:
    """Nodes and pods from the extender's cache; reservations published through it."""

    def __init__(self, cache: ClusterCache) -> None:
        self._cache = cache

    @property
    def synced(self) -> bool:
        # The cache's own flag (the one /readyz reports), not its snapshot's copy: the
        # cache marks itself synced just after publishing its last list, and a snapshot
        # is rebuilt only on a change, so in a quiet cluster the snapshot said "not
        # synced" until the next watch event (minutes), and the packer never planned.
        return self._cache.synced

    def objects(self) -> tuple[Sequence[Node], Sequence[Pod]]:
        with self._cache.locked():
            pods = list(self._cache.state.pods())
        nodes = [state.node for state in self._cache.snapshot().nodes.values()]
        return nodes, pods

    def set_reservations(self, book: ReservationBook) -> None:
        self._cache.publish_rule("reservations", book)


class KubePackerApi:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        instance: str,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._policy = client.PolicyV1Api(api)
        self._timeout = timeout
        self._events = EventPoster(
            api, component=COMPONENT, instance=instance, timeout=timeout, clock=clock
        )

    def unschedulable(self, scheduler_name: str) -> set[str]:
        response: Any = self._core.list_pod_for_all_namespaces(
            field_selector=f"status.phase=Pending,spec.schedulerName={scheduler_name}",
            _preload_content=False,
            _request_timeout=self._timeout,
        )
        stuck: set[str] = set()
        for item in json.loads(response.data).get("items", []):
            conditions = item.get("status", {}).get("conditions") or []
            if any(
                c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and c.get("reason") == "Unschedulable"
                for c in conditions
            ):
                stuck.add(item.get("metadata", {}).get("uid", ""))
        return stuck

    def disruption_budgets(self) -> Sequence[DisruptionBudget]:
        response: Any = self._policy.list_pod_disruption_budget_for_all_namespaces(
            _preload_content=False, _request_timeout=self._timeout
        )
        budgets: list[DisruptionBudget] = []
        for item in json.loads(response.data).get("items", []):
            try:
                budgets.append(budget_from_json(item))
            except ValidationError as exc:
                # Unreadable budget: its pods could not be protected, so refuse to plan.
                raise RuntimeError(f"malformed PodDisruptionBudget: {exc}") from exc
        return budgets

    def evict(self, pod: Pod) -> Eviction:
        body: Any = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
            # The UID precondition: never evict a newer pod of the same name.
            "deleteOptions": {"preconditions": {"uid": pod.uid}},
        }
        try:
            self._core.create_namespaced_pod_eviction(
                pod.name,
                pod.namespace,
                body,
                _preload_content=False,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return Eviction.GONE
            if exc.status == 429:
                return Eviction.THROTTLED
            log.warning("eviction of %s refused: %s %s", pod.key, exc.status, exc.reason)
            return Eviction.REFUSED
        except OSError as exc:
            log.warning("eviction of %s failed: %s", pod.key, exc)
            return Eviction.REFUSED
        return Eviction.EVICTED

    def event(self, pod: Pod, reason: str, message: str, *, warning: bool = False) -> None:
        """Best effort: an Event that cannot be written is logged, never raised."""
        about = ObjectRef("v1", "Pod", pod.name, pod.namespace, pod.uid)
        self._events.post(about, warning=warning, reason=reason, message=message)
