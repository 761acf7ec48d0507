"""Pydantic view of policy/v1 PodDisruptionBudget: its selector and disruptionsAllowed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scheduler_extender.adapters.kube.schema import ObjectMeta
from scheduler_extender.domain.packing.disruption import (
    DisruptionBudget,
    LabelRequirement,
    LabelSelector,
)


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class LabelSelectorRequirementView(_View):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)


class LabelSelectorView(_View):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirementView] = Field(
        default_factory=list, alias="matchExpressions"
    )

    def to_domain(self) -> LabelSelector:
        return LabelSelector(
            match_labels=self.match_labels,
            match_expressions=tuple(
                LabelRequirement(r.key, r.operator, tuple(r.values)) for r in self.match_expressions
            ),
        )


class PdbSpec(_View):
    selector: LabelSelectorView | None = None


class PdbStatus(_View):
    # Absent until the disruption controller has computed it: nothing may go.
    disruptions_allowed: int = Field(default=0, alias="disruptionsAllowed")


class PdbView(_View):
    metadata: ObjectMeta
    spec: PdbSpec = Field(default_factory=PdbSpec)
    status: PdbStatus = Field(default_factory=PdbStatus)

    def to_domain(self) -> DisruptionBudget:
        return DisruptionBudget(
            namespace=self.metadata.namespace or "default",
            name=self.metadata.name,
            selector=self.spec.selector.to_domain() if self.spec.selector is not None else None,
            disruptions_allowed=self.status.disruptions_allowed,
        )


def budget_from_json(obj: Any) -> DisruptionBudget:
    return PdbView.model_validate(obj).to_domain()
