"""PodDisruptionBudgets as the packer reads them."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from scheduler_extender.adapters.packer.schema import budget_from_json
from tests.builders import pod


def pdb(spec: dict[str, object], status: dict[str, object] | None = None) -> dict[str, object]:
    body: dict[str, object] = {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}
    if status is not None:
        body["status"] = status
    return body


def test_selector_and_allowed_disruptions_are_read() -> None:
    budget = budget_from_json(
        pdb(
            {
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
                }
            },
            {"disruptionsAllowed": 2},
        )
    )
    assert budget.key == "default/web"
    assert budget.disruptions_allowed == 2
    assert not budget.covers(pod("w"))  # the builder's pods carry no app label
    assert budget.covers(dataclasses.replace(pod("w"), labels={"app": "web"}))


def test_a_budget_without_status_allows_nothing_and_without_selector_covers_nothing() -> None:
    budget = budget_from_json(pdb({}))
    assert budget.disruptions_allowed == 0
    assert budget.selector is None
    assert not budget.covers(pod("w"))


def test_a_malformed_budget_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        budget_from_json(pdb({"selector": {"matchExpressions": [{"operator": "In"}]}}))
