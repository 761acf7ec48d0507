"""Least privilege in the rendered RBAC: one ServiceAccount per pod (the scheduler pods' serves
both kube-scheduler and the extender beside it), exactly the verbs each needs, no wildcards, no
secrets, nothing bound to cluster-admin."""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.chart.conftest import CHART, Manifest, Render, component, find, one

MONITORING = [CHART / "ci" / "monitoring-values.yaml"]  # every component on


def rules_of(manifests: list[Manifest], kind: str, name: str) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, resourceName or "") of every rule of one role, flattened."""
    (role,) = [m for m in find(manifests, kind) if m["metadata"]["name"] == name]
    return {
        (group, resource, verb, resource_name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for resource_name in rule.get("resourceNames", [""])
    }


def bindings_of(manifests: list[Manifest], account: str) -> list[dict[str, Any]]:
    return [
        m
        for m in find(manifests, "ClusterRoleBinding") + find(manifests, "RoleBinding")
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in m["subjects"])
    ]


def test_no_wildcards_no_secrets_no_escalation(render: Render) -> None:
    manifests = render(values=MONITORING)
    for role in find(manifests, "ClusterRole") + find(manifests, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], role["metadata"]["name"]
            assert "secrets" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert "nonResourceURLs" not in rule
    for binding in find(manifests, "ClusterRoleBinding") + find(manifests, "RoleBinding"):
        assert binding["roleRef"]["name"] not in {"cluster-admin", "admin", "edit"}


def test_one_service_account_per_pod(render: Render) -> None:
    manifests = render(values=MONITORING)
    accounts = {m["metadata"]["name"] for m in find(manifests, "ServiceAccount")}
    assert accounts == {"rel-scheduler-extender-scheduler", "rel-scheduler-extender-controller"}
    for name in ("scheduler", "controller"):
        deployment = component(manifests, "Deployment", name)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == (
            f"rel-scheduler-extender-{name}"
        )
    assert {m["metadata"]["name"] for m in find(manifests, "Deployment")} == {
        "rel-scheduler-extender-scheduler",
        "rel-scheduler-extender-controller",
    }  # no extender Deployment: the extender runs in the scheduler pods


SCHEDULER = "rel-scheduler-extender-scheduler"


def test_the_scheduler_pods_get_kube_schedulers_roles_and_the_extenders(render: Render) -> None:
    manifests = render()
    refs = {
        (b["kind"], b["roleRef"]["name"], b["metadata"].get("namespace", ""))
        for b in bindings_of(manifests, SCHEDULER)
    }
    assert refs == {
        # kube-scheduler's, maintained upstream
        ("ClusterRoleBinding", "system:kube-scheduler", ""),
        ("ClusterRoleBinding", "system:volume-scheduler", ""),
        ("RoleBinding", "extension-apiserver-authentication-reader", "kube-system"),
        # the extender container's
        ("ClusterRoleBinding", "ns:rel-scheduler-extender:extender", ""),
        # both containers' Leases
        ("RoleBinding", SCHEDULER, "ns"),
    }
    # Every binding of the chart names an account the chart's pods run as.
    pods = {
        d["spec"]["template"]["spec"]["serviceAccountName"]
        for d in find(render(values=MONITORING), "Deployment")
    }
    for binding in find(manifests, "ClusterRoleBinding") + find(manifests, "RoleBinding"):
        assert {s["name"] for s in binding["subjects"]} <= pods, binding["metadata"]["name"]


def test_the_extender_may_do_exactly_what_it_needs(render: Render) -> None:
    manifests = render()
    assert rules_of(manifests, "ClusterRole", "ns:rel-scheduler-extender:extender") == {
        ("", "nodes", "get", ""),
        ("", "nodes", "list", ""),
        ("", "nodes", "watch", ""),
        ("", "pods", "get", ""),
        ("", "pods", "list", ""),
        ("", "pods", "watch", ""),
        ("", "pods", "patch", ""),
        ("", "pods/binding", "create", ""),
        ("", "pods/eviction", "create", ""),
        ("policy", "poddisruptionbudgets", "get", ""),
        ("policy", "poddisruptionbudgets", "list", ""),
        ("policy", "poddisruptionbudgets", "watch", ""),
        ("", "events", "create", ""),  # the packer's plans, recorded on the pods
        # DRA, read only: kube-scheduler allocates the devices
        ("resource.k8s.io", "resourceslices", "get", ""),
        ("resource.k8s.io", "resourceslices", "list", ""),
        ("resource.k8s.io", "resourceslices", "watch", ""),
        ("resource.k8s.io", "resourceclaims", "get", ""),
        ("resource.k8s.io", "resourceclaims", "list", ""),
        ("resource.k8s.io", "resourceclaims", "watch", ""),
        ("resource.k8s.io", "deviceclasses", "get", ""),
        ("resource.k8s.io", "deviceclasses", "list", ""),
        ("resource.k8s.io", "deviceclasses", "watch", ""),
    }


def test_the_scheduler_pods_renew_exactly_their_two_leases(render: Render) -> None:
    manifests = render()
    assert rules_of(manifests, "Role", SCHEDULER) == {
        ("coordination.k8s.io", "leases", "create", ""),
        # kube-scheduler's
        ("coordination.k8s.io", "leases", "get", SCHEDULER),
        ("coordination.k8s.io", "leases", "update", SCHEDULER),
        # the extender's packer's
        ("coordination.k8s.io", "leases", "get", "rel-scheduler-extender-extender"),
        ("coordination.k8s.io", "leases", "update", "rel-scheduler-extender-extender"),
    }
    assert [r["metadata"]["name"] for r in find(manifests, "Role")] == [SCHEDULER]


def test_the_controller_may_do_exactly_what_it_needs(render: Render) -> None:
    manifests = render(values=MONITORING)
    rules = rules_of(manifests, "ClusterRole", "ns:rel-scheduler-extender:controller")
    group = "scheduler-extender.io"
    assert rules == {
        (group, "agentautoscalers", "get", ""),
        (group, "agentautoscalers", "list", ""),
        (group, "agentautoscalers", "watch", ""),
        (group, "agentautoscalers/status", "get", ""),
        (group, "agentautoscalers/status", "patch", ""),
        (group, "agentautoscalers/status", "update", ""),
        ("apps", "deployments", "get", ""),
        ("apps", "statefulsets", "get", ""),
        ("apps", "deployments/scale", "get", ""),
        ("apps", "deployments/scale", "patch", ""),
        ("apps", "deployments/scale", "update", ""),
        ("apps", "statefulsets/scale", "get", ""),
        ("apps", "statefulsets/scale", "patch", ""),
        ("apps", "statefulsets/scale", "update", ""),
        ("autoscaling", "horizontalpodautoscalers", "get", ""),
        ("autoscaling", "horizontalpodautoscalers", "list", ""),
        ("", "events", "create", ""),
        ("", "events", "patch", ""),
    }


def test_rbac_can_be_left_to_the_user(render: Render) -> None:
    manifests = render(values=MONITORING, set_values=["rbac.create=false"])
    assert not [m for m in manifests if m["apiVersion"].startswith("rbac.authorization.k8s.io")]


def test_the_packer_elects_on_a_lease_the_pods_role_allows(render: Render) -> None:
    for release, namespace in (("rel", "ns"), ("scheduler-extender", "scheduler-extender")):
        manifests = render(release=release, namespace=namespace)
        pod = component(manifests, "Deployment", "scheduler")["spec"]["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == "extender"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        (role,) = [
            r for r in find(manifests, "Role") if r["metadata"]["name"].endswith("-scheduler")
        ]
        renewable = {
            name
            for rule in role["rules"]
            if "update" in rule["verbs"]
            for name in rule.get("resourceNames", [])
        }
        # Its own Lease and kube-scheduler's, which the scheduler configuration names.
        config = yaml.safe_load(
            one(manifests, "ConfigMap", f"{role['metadata']['name']}")["data"][
                "scheduler-config.yaml"
            ]
        )
        assert renewable == {
            env["SCHEDULER_EXTENDER_PACKER__LEASE_NAME"],
            config["leaderElection"]["resourceName"],
        }
        assert (
            env["SCHEDULER_EXTENDER_PACKER__LEASE_NAME"] != config["leaderElection"]["resourceName"]
        )
        # No lease namespace is set: the packer uses its pod's, where the Role is.
        assert "SCHEDULER_EXTENDER_PACKER__LEASE_NAMESPACE" not in env
        assert role["metadata"]["namespace"] == namespace
