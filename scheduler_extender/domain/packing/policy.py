"""Which pods the packer may touch: pinning of running pods, skipping of pending ones.

A running pod is *pinned* when moving or evicting it would be unsafe or could
not be undone: nothing would recreate it (no controller, or a controller whose
replacement would not come back through a scheduler), an operator said so, a
disruption budget forbids it, or its placement depends on terms the model
cannot express. A pinned pod stays where it is and simply occupies capacity.

A pending pod is *skipped* (left to kube-scheduler, not in the model) when the
model could not guarantee that kube-scheduler accepts the planned node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.packing.disruption import DisruptionBudget

NOT_MOVABLE_ANNOTATION = "scheduler-extender.io/movable"


class PinReason(StrEnum):
    """Why a running pod must stay where it is (bounded: also a plan/metric key)."""

    NO_CONTROLLER = "no_controller"
    DAEMONSET = "daemonset"
    OWNER_KIND = "owner_kind_not_movable"
    MIRROR = "mirror_pod"
    EXCLUDED_NAMESPACE = "excluded_namespace"
    ANNOTATED = "annotated_not_movable"
    DISRUPTION_BUDGET = "disruption_budget"
    MULTIPLE_BUDGETS = "multiple_disruption_budgets"
    POD_CONSTRAINTS = "pod_level_constraints"
    TERMINATING = "terminating"
    OTHER_SCHEDULER = "other_scheduler"
    UNKNOWN_NODE = "node_not_in_snapshot"
    # DRA claims: the packing model knows node totals, not devices (domain/devices.py).
    DEVICE_CLAIMS = "device_claims"
    # A gang with fewer pods than its declared size so far (groups.declared_size).
    INCOMPLETE_GROUP = "incomplete_group"


class SkipReason(StrEnum):
    """Why a pending pod is left to kube-scheduler."""

    POD_CONSTRAINTS = "pod_level_constraints"
    EXCLUDED_NAMESPACE = "excluded_namespace"
    TERMINATING = "terminating"
    OTHER_SCHEDULER = "other_scheduler"
    DEVICE_CLAIMS = "device_claims"
    # A gang with fewer pods than its declared size so far (groups.declared_size).
    INCOMPLETE_GROUP = "incomplete_group"


@dataclass(frozen=True, slots=True)
class PackingPolicy:
    excluded_namespaces: frozenset[str] = frozenset({"kube-system"})
    # Owners whose controller recreates an evicted pod through the scheduler.
    # Jobs are left out on purpose: an eviction counts as a failed attempt.
    movable_owner_kinds: frozenset[str] = frozenset({"ReplicaSet", "StatefulSet"})
    # None: every scheduler's pods (offline analysis); otherwise only pods whose
    # replacements our filter sees, so that reservations can steer them.
    scheduler_names: frozenset[str] | None = None
    max_agent_replicas_per_node: int = 0  # the extender's own hard rule; 0 = no limit
    not_movable_annotation: str = NOT_MOVABLE_ANNOTATION

    def ours(self, pod: Pod) -> bool:
        return self.scheduler_names is None or pod.scheduler_name in self.scheduler_names


def pin_reason(
    pod: Pod, policy: PackingPolicy, budgets: Sequence[DisruptionBudget]
) -> PinReason | None:
    """Why a running pod may not be moved or evicted, or None when it may."""
    if pod.is_mirror:
        return PinReason.MIRROR
    if pod.owner is None:
        return PinReason.NO_CONTROLLER
    if pod.owner.kind == "DaemonSet":
        return PinReason.DAEMONSET
    if pod.owner.kind not in policy.movable_owner_kinds:
        return PinReason.OWNER_KIND
    if pod.deleting:
        return PinReason.TERMINATING
    if pod.namespace in policy.excluded_namespaces:
        return PinReason.EXCLUDED_NAMESPACE
    if pod.annotations.get(policy.not_movable_annotation, "").lower() == "false":
        return PinReason.ANNOTATED
    if pod.has_pod_level_constraints:
        return PinReason.POD_CONSTRAINTS
    if pod.claims:
        return PinReason.DEVICE_CLAIMS
    if not policy.ours(pod):
        return PinReason.OTHER_SCHEDULER
    covering = [b for b in budgets if b.covers(pod)]
    if len(covering) > 1:
        return PinReason.MULTIPLE_BUDGETS  # the Eviction API refuses such pods outright
    if covering and covering[0].disruptions_allowed <= 0:
        return PinReason.DISRUPTION_BUDGET
    return None


def skip_reason(pod: Pod, policy: PackingPolicy) -> SkipReason | None:
    """Why a pending pod is not planned for, or None when it is."""
    if pod.deleting:
        return SkipReason.TERMINATING
    if pod.namespace in policy.excluded_namespaces:
        return SkipReason.EXCLUDED_NAMESPACE
    if pod.has_pod_level_constraints:
        return SkipReason.POD_CONSTRAINTS
    if pod.claims:
        return SkipReason.DEVICE_CLAIMS
    if not policy.ours(pod):
        return SkipReason.OTHER_SCHEDULER
    return None
