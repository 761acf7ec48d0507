"""Group detection and where a group's members are, as the cluster state keeps it."""

from __future__ import annotations

import dataclasses

from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.cluster import ClusterState
from scheduler_extender.domain.groups import (
    GROUP_LABEL,
    GROUP_SIZE_ANNOTATION,
    LWS_GROUP_INDEX_LABEL,
    LWS_NAME_LABEL,
    LWS_SIZE_ANNOTATION,
    declared_size,
    group_of,
)
from scheduler_extender.domain.objects import Pod
from tests.builders import node, pod, pod_json

AGENT_LABEL = "scheduler-extender.io/agent"


def labelled(
    name: str, labels: dict[str, str], *, node_name: str = "", namespace: str = "a"
) -> Pod:
    raw = pod_json(name, 1, node=node_name, namespace=namespace)
    raw["metadata"]["labels"].update(labels)
    return pod_from_json(raw, AGENT_LABEL)


def test_a_leaderworkerset_group_is_its_name_and_index() -> None:
    lws = {LWS_NAME_LABEL: "moe", LWS_GROUP_INDEX_LABEL: "2"}
    assert group_of(labelled("w", lws)) == "a/lws/moe/2"
    other_index = {LWS_NAME_LABEL: "moe", LWS_GROUP_INDEX_LABEL: "3"}
    assert group_of(labelled("w", other_index)) != group_of(labelled("w", lws))


def test_the_group_label_groups_pods_per_namespace() -> None:
    assert group_of(labelled("p", {GROUP_LABEL: "ep"})) == "a/group/ep"
    assert group_of(labelled("p", {GROUP_LABEL: "ep"}, namespace="b")) == "b/group/ep"
    assert group_of(pod("plain", 1)) is None


def test_the_snapshot_says_where_each_group_runs() -> None:
    state = ClusterState()
    state.upsert_node(node("n1"))
    state.upsert_node(node("n2"))
    state.upsert_pod(labelled("m0", {GROUP_LABEL: "ep"}, node_name="n1"))
    state.upsert_pod(labelled("m1", {GROUP_LABEL: "ep"}, node_name="n1"))
    waiting = labelled("m2", {GROUP_LABEL: "ep"})
    state.upsert_pod(waiting)
    assert dict(state.snapshot().groups["a/group/ep"]) == {"n1": 2}
    state.assume(waiting, "n2", deadline=1e9)
    assert dict(state.snapshot().groups["a/group/ep"]) == {"n1": 2, "n2": 1}
    state.forget(waiting.uid)
    assert dict(state.snapshot().groups["a/group/ep"]) == {"n1": 2}


def test_a_group_declares_its_size_by_leaderworkersets_annotation_or_ours() -> None:
    lws = {LWS_NAME_LABEL: "moe", LWS_GROUP_INDEX_LABEL: "2"}

    def annotated(labels: dict[str, str], annotations: dict[str, str]) -> Pod:
        return dataclasses.replace(labelled("p", labels), annotations=annotations)

    assert declared_size(annotated(lws, {LWS_SIZE_ANNOTATION: "4"})) == 4
    assert declared_size(annotated({GROUP_LABEL: "g"}, {GROUP_SIZE_ANNOTATION: "3"})) == 3
    # Each way reads its own annotation; nonsense says nothing.
    assert declared_size(annotated(lws, {GROUP_SIZE_ANNOTATION: "4"})) is None
    for bad in ("", "0", "-2", "three", "2.5", "²"):
        assert declared_size(annotated({GROUP_LABEL: "g"}, {GROUP_SIZE_ANNOTATION: bad})) is None
