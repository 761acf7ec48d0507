from __future__ import annotations

import dataclasses

import pytest

from scheduler_extender.domain.objects import Requirement, SelectorTerm, Taint, Toleration
from tests.builders import node, pod


@pytest.mark.parametrize(
    ("operator", "values", "labels", "expected"),
    [
        ("In", ("a", "b"), {"k": "a"}, True),
        ("In", ("a",), {}, False),
        ("NotIn", ("a",), {"k": "b"}, True),
        ("NotIn", ("a",), {}, True),
        ("Exists", (), {"k": ""}, True),
        ("DoesNotExist", (), {"k": "x"}, False),
        ("Gt", ("3",), {"k": "4"}, True),
        ("Gt", ("3",), {"k": "3"}, False),
        ("Lt", ("3",), {"k": "2"}, True),
        ("Lt", ("3",), {"k": "two"}, False),
    ],
)
def test_requirement_operators(
    operator: str, values: tuple[str, ...], labels: dict[str, str], expected: bool
) -> None:
    assert Requirement("k", operator, values).matches(labels) is expected


def test_tolerations() -> None:
    taint = Taint("gpu", "true", "NoSchedule")
    assert Toleration("gpu", "Equal", "true", "NoSchedule").tolerates(taint)
    assert Toleration("gpu", "Exists").tolerates(taint)
    assert Toleration(operator="Exists").tolerates(taint)
    assert not Toleration("gpu", "Equal", "false").tolerates(taint)
    assert not Toleration("gpu", "Exists", effect="NoExecute").tolerates(taint)


def test_node_admits_checks_taints_selector_and_affinity() -> None:
    tainted = node("t", taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}])
    soft = node("s", taints=[{"key": "gpu", "value": "x", "effect": "PreferNoSchedule"}])
    assert not tainted.admits(pod("p"))
    assert soft.admits(pod("p"))
    labelled = node("l", labels={"zone": "z1"})
    term = SelectorTerm(expressions=(Requirement("zone", "In", ("z1",)),))
    name_term = SelectorTerm(fields=(Requirement("metadata.name", "In", ("other",)),))
    p = pod("p")
    assert labelled.admits(p)
    import dataclasses

    assert labelled.admits(dataclasses.replace(p, required_affinity=(term,)))
    assert not labelled.admits(dataclasses.replace(p, required_affinity=(name_term,)))
    assert not labelled.admits(dataclasses.replace(p, node_selector={"zone": "z2"}))


@pytest.mark.parametrize(
    ("toleration", "admitted"),
    [
        (None, False),
        (Toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule"), True),
        (Toleration("node.kubernetes.io/unschedulable", "Equal", ""), True),
        (Toleration(operator="Exists"), True),  # tolerates everything
        (Toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoExecute"), False),
        (Toleration("other", "Exists"), False),
    ],
)
def test_a_cordoned_node_admits_pods_that_tolerate_the_cordon(
    toleration: Toleration | None, admitted: bool
) -> None:
    cordoned = dataclasses.replace(node("c"), unschedulable=True)
    p = dataclasses.replace(pod("p"), tolerations=(toleration,) if toleration else ())
    assert cordoned.admits(p) is admitted
    assert dataclasses.replace(cordoned, unschedulable=False).admits(p)
