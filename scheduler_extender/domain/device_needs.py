"""What the pods asking for each device shape come with: their cpu and memory.

A DRA request says nothing of its pod's cpu and memory, yet a node's devices
are of use only with the cpu and memory to feed them (``device_packing``). The
pods say it: each pod whose claims are all known adds its cpu and memory to the
shapes of its claims' requests, split evenly among them, once. Pods and their
claims arrive in either order (a claim from a template is made after its pod
and named in the pod's status), so a pod waits for a claim it names that is
not known yet and is counted when the claim comes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from scheduler_extender.domain.devices import NO_NEEDS, Claim, DeviceShape, Needs, device_shape
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.resources import CPU, MEMORY


class NeedsBook:
    """The cpu and memory per device shape of the pods seen; not thread-safe."""

    def __init__(self) -> None:
        self._sums: dict[DeviceShape, tuple[int, float, float]] = {}  # requests, cpu, memory
        self._counted: set[str] = set()  # pod UIDs
        self._waiting: dict[str, set[str]] = {}  # claim key -> pods that wait for it
        self._waits_for: dict[str, str] = {}  # pod UID -> the claim key it waits for
        self._frozen = NO_NEEDS
        self._dirty = False

    def pod_seen(self, pod: Pod, claim_of: Callable[[str], Claim | None]) -> bool:
        """Count ``pod`` once all its claims are known; whether the needs changed."""
        if not pod.claims or pod.uid in self._counted:
            return False
        self._stop_waiting(pod.uid)
        shapes: list[DeviceShape] = []
        for entry in pod.claims:
            if not entry.claim_name:
                return False  # generated from a template, not named yet: its next update will
            key = f"{pod.namespace}/{entry.claim_name}"
            claim = claim_of(key)
            if claim is None:
                self._waiting.setdefault(key, set()).add(pod.uid)
                self._waits_for[pod.uid] = key
                return False
            shapes.extend(s for r in claim.requests if (s := device_shape(r)) is not None)
        self._counted.add(pod.uid)
        if not shapes:
            return False
        cpu = pod.requests.get(CPU) / len(shapes)
        memory = pod.requests.get(MEMORY) / len(shapes)
        for shape in shapes:
            requests, cpu_sum, memory_sum = self._sums.get(shape, (0, 0.0, 0.0))
            self._sums[shape] = (requests + 1, cpu_sum + cpu, memory_sum + memory)
        self._dirty = True
        return True

    def claim_seen(self, key: str) -> list[str]:
        """The pods that waited for the claim ``key`` (to be seen again)."""
        waiting = self._waiting.pop(key, set())
        for uid in waiting:
            self._waits_for.pop(uid, None)
        return sorted(waiting)

    def pod_gone(self, uid: str) -> None:
        """Forget the pod (what it added to the means stays: they are history)."""
        self._counted.discard(uid)
        self._stop_waiting(uid)

    def freeze(self) -> Mapping[DeviceShape, Needs]:
        if self._dirty:
            self._frozen = MappingProxyType(
                {s: Needs(c / n, m / n) for s, (n, c, m) in self._sums.items()}
            )
            self._dirty = False
        return self._frozen

    def _stop_waiting(self, uid: str) -> None:
        key = self._waits_for.pop(uid, None)
        if key is not None:
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.discard(uid)
                if not waiting:
                    del self._waiting[key]
