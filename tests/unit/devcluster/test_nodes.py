from __future__ import annotations

from collections import Counter

import pytest

from scheduler_extender.devcluster import nodes


@pytest.mark.parametrize("gpus", nodes.GPU_SHAPES)
def test_templates_are_fake_gpu_nodes(gpus: int) -> None:
    node = nodes.template(gpus)
    labels = node["metadata"]["labels"]
    assert node["kind"] == "Node"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == str(gpus)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(gpus)
    assert labels["nvidia.com/gpu.count"] == str(gpus)
    assert labels["nvidia.com/gpu.product"].startswith("NVIDIA-")
    assert {nodes.ZONE_LABEL, nodes.RACK_LABEL} <= set(labels)
    # An NVLink domain only where there is NVLink: on the multi-GPU nodes.
    assert (nodes.NVLINK_LABEL in labels) == (gpus > 1)


def test_layout() -> None:
    assert nodes.layout(3, 4) == [4, 4, 4]
    assert nodes.layout(3, "8") == [8, 8, 8]
    mix = nodes.layout(16, "mix")
    assert Counter(mix) == {8: 8, 4: 4, 1: 4}
    for bad in (3, "two"):
        with pytest.raises(nodes.NodeLayoutError):
            nodes.layout(2, bad)
    with pytest.raises(nodes.NodeLayoutError):
        nodes.layout(-1, 8)


def test_fleet_topology_follows_the_index() -> None:
    fleet = nodes.fleet(40, "mix", prefix="gpu")
    manifests = [n.manifest() for n in fleet]
    names = [m["metadata"]["name"] for m in manifests]
    assert len(set(names)) == 40
    assert names[0] == "gpu-8g-0000"
    assert names[3] == "gpu-1g-0003"
    labels = [m["metadata"]["labels"] for m in manifests]
    assert all(
        lab["kubernetes.io/hostname"] == name for lab, name in zip(labels, names, strict=True)
    )
    per_rack = Counter(lab[nodes.RACK_LABEL] for lab in labels)
    assert set(per_rack.values()) == {nodes.NODES_PER_RACK}
    per_zone = Counter(lab[nodes.ZONE_LABEL] for lab in labels)
    assert per_zone == {"zone-a": 16, "zone-b": 16, "zone-c": 8}
    # Nodes of one rack share the rack's NVLink domain, when they have NVLink.
    for lab in labels:
        if nodes.NVLINK_LABEL in lab:
            assert lab[nodes.NVLINK_LABEL] == lab[nodes.RACK_LABEL].replace("rack", "nvl")


def test_extra_labels_and_taints() -> None:
    [node] = nodes.fleet(1, 4, prefix="p")
    manifest = node.manifest(
        labels={"pool": "a"}, taints=[{"key": "pool", "value": "a", "effect": "NoSchedule"}]
    )
    assert manifest["metadata"]["labels"]["pool"] == "a"
    assert manifest["spec"]["taints"] == [{"key": "pool", "value": "a", "effect": "NoSchedule"}]
    assert "taints" not in node.manifest().get("spec", {})


def test_schedulable_needs_ready_and_no_not_ready_taint() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}, "spec": {}}
    assert nodes.schedulable(ready)
    tainted = {
        **ready,
        "spec": {"taints": [{"key": nodes.NOT_READY_TAINT, "effect": "NoSchedule"}]},
    }
    assert not nodes.schedulable(tainted)
    assert not nodes.schedulable({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not nodes.schedulable({})


def test_a_node_of_any_gpu_count_and_capacity() -> None:
    manifest = nodes.FakeNode("n", 2, 5).manifest(
        capacity={"cpu": "104", "memory": "512Gi"}, labels={nodes.GPU_PRODUCT_LABEL: "T4"}
    )
    for key in ("capacity", "allocatable"):
        assert manifest["status"][key][nodes.GPU_RESOURCE] == "2"
        assert manifest["status"][key]["cpu"] == "104"
    labels = manifest["metadata"]["labels"]
    assert labels[nodes.GPU_COUNT_LABEL] == "2"
    assert labels[nodes.GPU_PRODUCT_LABEL] == "T4"
    assert labels[nodes.NVLINK_LABEL] == "nvl-1"  # index 5: the second rack
