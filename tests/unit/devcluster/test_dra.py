"""The fake DRA driver's objects, as the extender reads them."""

from __future__ import annotations

from scheduler_extender.adapters.kube.dra_schema import device_class_from_json, slice_from_json
from scheduler_extender.devcluster import dra
from scheduler_extender.devcluster.nodes import fleet
from scheduler_extender.domain.devices import DeviceChoice, choice_fits, freeze_devices

GI = 2**30


def test_each_fake_gpu_node_publishes_its_gpus_as_shareable_devices() -> None:
    h100, l4 = fleet(1, 8)[0], fleet(1, 1)[0]
    parsed = slice_from_json(dra.node_slice(h100))
    assert parsed.node == h100.name
    assert parsed.driver == dra.DRIVER
    assert [d.name for d in parsed.devices] == [f"gpu-{i}" for i in range(8)]
    device = parsed.devices[0]
    assert device.product == "NVIDIA-H100-80GB-HBM3"
    assert device.clique  # the node's NVLink domain
    assert device.capacity == {"memory": 80 * GI}
    assert device.shared
    small = slice_from_json(dra.node_slice(l4))
    assert small.devices[0].capacity == {"memory": 24 * GI}
    assert small.devices[0].clique is None  # 1-GPU nodes have no NVLink domain


def test_the_device_classes_select_the_driver_and_each_product() -> None:
    nodes = fleet(2, "mix")  # an 8-GPU H100 and a 4-GPU A100
    slices = [slice_from_json(dra.node_slice(n)) for n in nodes]
    classes = [device_class_from_json(c) for c in dra.device_classes()]
    assert {c.name for c in classes} >= {dra.DRIVER, dra.class_name("NVIDIA-L4")}
    devices = freeze_devices(slices, [], classes)
    h100_node, a100_node = (devices.of(n.name) for n in nodes)
    h100 = DeviceChoice(dra.class_name("NVIDIA-H100-80GB-HBM3"), count=8)
    assert choice_fits(h100, devices, h100_node) is True
    assert choice_fits(h100, devices, a100_node) is False
    assert choice_fits(DeviceChoice(dra.class_name(), count=4), devices, a100_node) is True
