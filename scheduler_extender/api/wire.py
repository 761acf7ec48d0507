"""Wire models of the kube-scheduler extender protocol (k8s.io/kube-scheduler/extender/v1).

The upstream Go structs carry no JSON tags, so every key is the Go field name
in PascalCase, exactly as written here. Nested Kubernetes objects (Pod, Node)
keep their usual camelCase keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scheduler_extender.adapters.kube.schema import PodView


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=False)


class NodeList(_Wire):
    # Node objects are echoed back unchanged in the reply, so they stay raw here
    # and are validated one by one (see routes).
    items: list[dict[str, Any]] = Field(default_factory=list)


class ExtenderArgs(_Wire):
    pod: PodView = Field(alias="Pod")
    nodes: NodeList | None = Field(default=None, alias="Nodes")
    node_names: list[str] | None = Field(default=None, alias="NodeNames")


def filter_result(
    *,
    nodes: list[dict[str, Any]] | None = None,
    node_names: list[str] | None = None,
    failed: dict[str, str] | None = None,
    unresolvable: dict[str, str] | None = None,
    error: str = "",
) -> dict[str, Any]:
    """ExtenderFilterResult as a plain dict: it can carry thousands of node names,
    so it skips model validation on the hot path."""
    return {
        "Nodes": None if nodes is None else {"items": nodes},
        "NodeNames": node_names,
        "FailedNodes": failed or {},
        "FailedAndUnresolvableNodes": unresolvable or {},
        "Error": error,
    }


# HostPriorityList, the prioritize reply, is a bare array of {"Host": str, "Score": 0..10},
# written directly by the route for the same reason.


class ExtenderBindingArgs(_Wire):
    pod_name: str = Field(alias="PodName", min_length=1)
    pod_namespace: str = Field(alias="PodNamespace", min_length=1)
    pod_uid: str = Field(alias="PodUID", min_length=1)
    node: str = Field(alias="Node", min_length=1)


class ExtenderBindingResult(_Wire):
    error: str = Field(default="", alias="Error")


class MetaPod(_Wire):
    uid: str = Field(alias="UID")


class MetaVictims(_Wire):
    pods: list[MetaPod] = Field(default_factory=list, alias="Pods")
    num_pdb_violations: int = Field(default=0, alias="NumPDBViolations")


class Victims(_Wire):
    pods: list[PodView] = Field(default_factory=list, alias="Pods")
    num_pdb_violations: int = Field(default=0, alias="NumPDBViolations")


class ExtenderPreemptionArgs(_Wire):
    pod: PodView = Field(alias="Pod")
    node_name_to_victims: dict[str, Victims] | None = Field(default=None, alias="NodeNameToVictims")
    node_name_to_meta_victims: dict[str, MetaVictims] | None = Field(
        default=None, alias="NodeNameToMetaVictims"
    )


class ExtenderPreemptionResult(_Wire):
    node_name_to_meta_victims: dict[str, MetaVictims] = Field(
        default_factory=dict, alias="NodeNameToMetaVictims"
    )
