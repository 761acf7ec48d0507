"""GPUs through DRA on the local control plane: the fake driver's slices, the real kube-scheduler
allocating claims (kube-controller-manager makes them from templates), the extender filtering,
scoring and binding pods with claims.

The pool: two 4-GPU A100 nodes (80Gi each), published by the fake driver
(``devcluster/dra.py``); kube-scheduler calls the extender for every pod of the
profile (``every_pod``: pods with claims request no extended resource). What is
checked comes from the claims' allocations in the API server, not from the
extender's cache.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from scheduler_extender.devcluster import dra, workload
from scheduler_extender.devcluster.cluster import LocalCluster
from tests.e2e.helpers import (
    NodePool,
    extender_decisions,
    placement,
    submit_one_by_one,
    wait_for,
)

SHARE = "20Gi"


def template(
    name: str, namespace: str, *, memory: str | None = None, device_class: str | None = None
) -> dict[str, Any]:
    capacity = {"memory": memory} if memory else None
    request = dra.device_request(capacity=capacity, device_class=device_class)
    return dra.claim_template(name, namespace, request)


def claim_pod(
    pool: NodePool, name: str, namespace: str, template_name: str, cpu: str = "100m"
) -> dict[str, Any]:
    pod = pool.pod(name, namespace=namespace, gpus=0, cpu=cpu, memory="256Mi")
    dra.use_claim(pod, template_name=template_name)
    return pod


def allocations(api: client.ApiClient, namespace: str) -> dict[tuple[str, str], list[int]]:
    """(pool, device) -> memory each allocation consumes (a whole device: its capacity)."""
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for _, pool, device, consumed in dra.allocation_results(api, namespace, "memory"):
        # The fake GPUs allow multiple allocations: every result says what it consumes.
        assert consumed is not None, (pool, device)
        out[(pool, device)].append(consumed)
    return out


@pytest.fixture
def dra_pool(
    reconfigurable_cluster: LocalCluster, api: client.ApiClient, namespace: str, node_pool: NodePool
) -> Iterator[NodePool]:
    reconfigurable_cluster.start_scheduler(extender=True, every_pod=True)
    node_pool.add(2, gpus=4)
    dra.publish(api, node_pool.fleet)
    resource = client.ResourceV1Api(api)
    for body in (
        template("share", namespace, memory=SHARE),
        template("whole", namespace),
    ):
        created: Any = body
        resource.create_namespaced_resource_claim_template(namespace, created)
    yield node_pool
    dra.withdraw(api, node_pool.node_names)


def test_shares_and_whole_devices_through_kube_scheduler_and_the_extender(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    dra_pool: NodePool,
) -> None:
    before = extender_decisions(reconfigurable_cluster.extender_endpoint.metrics_url)
    whole = submit_one_by_one(api, namespace, [claim_pod(dra_pool, "whole-0", namespace, "whole")])
    shares = submit_one_by_one(
        api, namespace, [claim_pod(dra_pool, f"share-{i}", namespace, "share") for i in range(5)]
    )
    after = extender_decisions(reconfigurable_cluster.extender_endpoint.metrics_url)
    # The extender filtered and bound every one of them.
    assert after[("bind", "bound")] - before[("bind", "bound")] == 6
    # A shared claim and a whole-device claim on the same node. (kube-scheduler alone stacks
    # these too: its OpportunisticBatching reuses the node of the previous equal pod; the
    # extender's own preference is checked by the test on demand below.)
    assert {shares[f"share-{i}"] for i in range(5)} == {whole["whole-0"]}

    capacity = dra.quantity("80Gi")
    taken = allocations(api, namespace)
    assert sum(len(v) for v in taken.values()) == 6
    for device, consumed in taken.items():
        assert sum(consumed) <= capacity, (device, consumed)  # never over a device's capacity
    full = [d for d, c in taken.items() if c == [capacity]]
    assert len(full) == 1  # the whole device holds the whole claim alone
    # 5 shares of 20Gi: four fill one GPU, the fifth starts another, on the same node.
    assert sorted(len(c) for d, c in taken.items() if d not in full) == [1, 4]


def test_a_withdrawn_slice_closes_its_node_and_a_republished_one_opens_it(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    dra_pool: NodePool,
) -> None:
    dra.withdraw(api, dra_pool.node_names)
    workload.create_pods(api, [claim_pod(dra_pool, "waiting", namespace, "share")])
    time.sleep(5)  # kube-scheduler has tried: no node has devices
    assert "waiting" not in placement(api, namespace)

    # The driver comes back on one node only, with smaller GPUs (a changed slice).
    first = dra_pool.fleet[0]
    dra.put_slice(api, dra.node_slice(first, memory="24Gi", generation=2))
    node = wait_for("waiting bound", lambda: placement(api, namespace).get("waiting"), timeout=60)
    assert node == first.name
    # 24Gi GPUs take one 20Gi share each: four shares fit on the node's four GPUs, no more.
    submit_one_by_one(
        api, namespace, [claim_pod(dra_pool, f"more-{i}", namespace, "share") for i in range(3)]
    )
    workload.create_pods(api, [claim_pod(dra_pool, "too-many", namespace, "share")])
    time.sleep(5)
    assert "too-many" not in placement(api, namespace)
    for device, consumed in allocations(api, namespace).items():
        assert sum(consumed) <= dra.quantity("24Gi"), (device, consumed)


def test_an_extended_resource_mapped_to_dra_devices_goes_through_the_extender(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    dra_pool: NodePool,
) -> None:
    # KEP-5004: a DeviceClass maps an extended resource the nodes do not advertise; a pod
    # requesting it gets devices of the class, through a claim kube-scheduler makes for it.
    resource_name = f"fake.scheduler-extender.io/{namespace}"
    device_class: Any = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": f"mapped-{namespace}"},
        "spec": {
            "selectors": [{"cel": {"expression": f'device.driver == "{dra.DRIVER}"'}}],
            "extendedResourceName": resource_name,
        },
    }
    resource = client.ResourceV1Api(api)
    resource.create_device_class(device_class)
    try:
        before = extender_decisions(reconfigurable_cluster.extender_endpoint.metrics_url)
        pod = dra_pool.pod("mapped", namespace=namespace, gpus=0, cpu="100m", memory="256Mi")
        container = pod["spec"]["containers"][0]["resources"]
        container["requests"][resource_name] = "3"
        container["limits"] = {resource_name: "3"}
        node = submit_one_by_one(api, namespace, [pod])["mapped"]
        after = extender_decisions(reconfigurable_cluster.extender_endpoint.metrics_url)
        assert after[("bind", "bound")] - before[("bind", "bound")] == 1
        taken = allocations(api, namespace)
        assert len(taken) == 3  # three devices, whole
        assert {pool for pool, _ in taken} == {node}
        # The next pod asking for 3 cannot share that node's last device: it goes elsewhere.
        second = dra_pool.pod("mapped-2", namespace=namespace, gpus=0, cpu="100m", memory="256Mi")
        second["spec"]["containers"][0]["resources"]["requests"][resource_name] = "3"
        second["spec"]["containers"][0]["resources"]["limits"] = {resource_name: "3"}
        assert submit_one_by_one(api, namespace, [second])["mapped-2"] != node
    finally:
        resource.delete_device_class(device_class["metadata"]["name"])


def test_a_share_goes_where_it_leaves_room_for_the_shares_in_demand(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    dra_pool: NodePool,
) -> None:
    # Node A's first GPU has 45Gi left, node B's 60Gi; 40Gi shares are in demand (two claims
    # wait for devices). A 10Gi share on A (the fuller: what filling the fullest would pick)
    # leaves 35Gi there, of no use to a 40Gi share; on B it leaves 50Gi, still one share's.
    # Everything else about A and B is equal for kube-scheduler, so the extender decides.
    a, b = dra_pool.node_names
    resource = client.ResourceV1Api(api)
    for name, memory in (("t35", "35Gi"), ("t20", "20Gi"), ("t10", "10Gi")):
        created: Any = template(name, namespace, memory=memory)
        resource.create_namespaced_resource_claim_template(namespace, created)

    def pinned(name: str, node: str, template_name: str) -> dict[str, Any]:
        pod = claim_pod(dra_pool, name, namespace, template_name)
        pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] = node
        return pod

    submit_one_by_one(api, namespace, [pinned("on-a", a, "t35"), pinned("on-b", b, "t20")])
    for i in range(2):
        forty = dra.device_request(capacity={"memory": "40Gi"})
        waiting: Any = dra.claim(f"forty-{i}", namespace, forty)
        resource.create_namespaced_resource_claim(namespace, waiting)
    time.sleep(2)  # the extender's watch has seen the waiting claims (the demand)

    placed = submit_one_by_one(api, namespace, [claim_pod(dra_pool, "small", namespace, "t10")])
    assert placed["small"] == b
    taken = allocations(api, namespace)
    assert sorted(taken[(b, "gpu-0")]) == sorted([dra.quantity("20Gi"), dra.quantity("10Gi")])
    assert taken[(a, "gpu-0")] == [dra.quantity("35Gi")]


def test_a_pod_that_asks_for_no_gpu_keeps_off_the_cpu_free_gpus_need(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    dra_pool: NodePool,
) -> None:
    # Node A (64 cpu): its 4 GPUs taken by pods asking 4 cpu each. Waiting: 4 pods for whole
    # GPUs asking 28 cpu each (pinned to no node), so a whole GPU comes with 16 cpu and node
    # B's 64 cpu feed its 4 free GPUs exactly. A pod asking 8 cpu and no GPU on B would leave
    # one of them unfed; on A it costs no GPU. kube-scheduler alone prefers B (less used).
    a = dra_pool.node_names[0]
    resource = client.ResourceV1Api(api)

    def whole(name: str, node: str, cpu: str) -> dict[str, Any]:
        pod = claim_pod(dra_pool, name, namespace, "whole", cpu)
        pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] = node
        return pod

    submit_one_by_one(api, namespace, [whole(f"on-a-{i}", a, "4") for i in range(4)])
    workload.create_pods(api, [whole(f"waiting-{i}", "nowhere", "28") for i in range(4)])

    def claims_made() -> bool:
        listed: Any = resource.list_namespaced_resource_claim(namespace)
        return len(listed.items) == 8

    wait_for("the waiting pods' claims", claims_made)
    time.sleep(2)  # the extender's watch has seen them and the pods that ask for them
    cpu_only = dra_pool.pod("cpu-only", namespace=namespace, gpus=0, cpu="8", memory="1Gi")
    placed = submit_one_by_one(api, namespace, [cpu_only])
    assert placed["cpu-only"] == a


def test_partitions_through_kube_scheduler_and_the_extender(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    dra_pool: NodePool,
) -> None:
    # MIG-like partitions (KEP-4815): one 24Gi GPU published as itself and as three 8Gi
    # partitions, all consuming one counter set that a second slice of the pool publishes.
    # kube-scheduler allocates three partitions, then neither a fourth nor the whole GPU; the
    # extender must agree (it once read partitions without counters in their own slice as
    # unavailable, and refused every node).
    node = dra_pool.node_names[0]
    dra.withdraw(api, dra_pool.node_names)
    pool = f"{node}-partitioned"

    def sliced(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": name},
            "spec": {
                "driver": dra.DRIVER,
                "nodeName": node,
                "pool": {"name": pool, "generation": 1, "resourceSliceCount": 2},
                **spec,
            },
        }

    def device(name: str, memory: str, partition: bool) -> dict[str, Any]:
        return {
            "name": name,
            "attributes": {"partition": {"bool": partition}},
            "capacity": {"memory": {"value": memory}},
            "consumesCounters": [
                {"counterSet": "gpu-0", "counters": {"memory": {"value": memory}}}
            ],
        }

    counters = sliced(
        f"{pool}-counters",
        sharedCounters=[{"name": "gpu-0", "counters": {"memory": {"value": "24Gi"}}}],
    )
    devices = sliced(
        f"{pool}-devices",
        devices=[
            device("gpu-0", "24Gi", False),
            *(device(f"gpu-0-part-{i}", "8Gi", True) for i in range(3)),
        ],
    )
    dra.put_slice(api, counters)
    dra.put_slice(api, devices)
    resource = client.ResourceV1Api(api)
    classes = []
    for partition in (True, False):
        name = f"{'part' if partition else 'whole'}-{namespace}"
        expression = (
            f'device.driver == "{dra.DRIVER}" && '
            f'device.attributes["{dra.DRIVER}"].partition == {str(partition).lower()}'
        )
        body: Any = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expression}}]},
        }
        resource.create_device_class(body)
        classes.append(name)
        claim_template: Any = template(name, namespace, device_class=name)
        resource.create_namespaced_resource_claim_template(namespace, claim_template)
    try:
        placed = submit_one_by_one(
            api,
            namespace,
            [claim_pod(dra_pool, f"part-{i}", namespace, classes[0]) for i in range(3)],
        )
        assert set(placed.values()) == {node}
        workload.create_pods(
            api,
            [
                claim_pod(dra_pool, "part-3", namespace, classes[0]),
                claim_pod(dra_pool, "whole", namespace, classes[1]),
            ],
        )
        time.sleep(5)
        assert {"part-3", "whole"}.isdisjoint(placement(api, namespace))
    finally:
        for name in classes:
            resource.delete_device_class(name)
        for published in (counters, devices):
            resource.delete_resource_slice(published["metadata"]["name"])


def test_a_hot_agents_share_goes_where_the_device_it_would_get_holds_no_hot_share(
    reconfigurable_cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    node_pool: NodePool,
) -> None:
    # Two nodes of four 80Gi GPUs, each holding one 10Gi share of a hot agent and one of a cold
    # agent, so node-level spreading ties. On node A the hot share is on gpu-0, on node B the
    # cold one is. kube-scheduler's allocator gives the next share the first device with room,
    # gpu-0, so a new share of the hot agent would sit beside the hot share on A and beside
    # the cold one on B: only the device-level popularity tells the nodes apart.
    cluster = reconfigurable_cluster
    agents = [workload.Agent("hot", 500.0, 3, 0), workload.Agent("cold", 1.0, 2, 0)]
    cluster.start_extender(
        env={**cluster.options.extender_env, **workload.popularity_env(agents)},
        args=cluster.options.extender_args,
    )
    cluster.start_scheduler(extender=True, every_pod=True)
    node_pool.add(2, gpus=4)
    dra.publish(api, node_pool.fleet)
    a, b = node_pool.node_names
    resource = client.ResourceV1Api(api)
    for index in (None, 0, 1):
        request = dra.device_request(capacity={"memory": "10Gi"})
        if index is not None:
            attribute = f'device.attributes["{dra.DRIVER}"].index == {index}'
            request["exactly"]["selectors"] = [{"cel": {"expression": attribute}}]
        name = "share" if index is None else f"share-on-{index}"
        body: Any = dra.claim_template(name, namespace, request)
        resource.create_namespaced_resource_claim_template(namespace, body)

    def replica(name: str, agent: str, node: str | None = None, device: int | None = None) -> Any:
        pod = node_pool.pod(name, namespace=namespace, gpus=0, agent=agent, cpu="100m")
        dra.use_claim(pod, template_name="share" if device is None else f"share-on-{device}")
        if node is not None:
            pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] = node
        return pod

    try:
        submit_one_by_one(
            api,
            namespace,
            [
                replica("hot-a", "hot", a, 0),
                replica("cold-a", "cold", a, 1),
                replica("hot-b", "hot", b, 1),
                replica("cold-b", "cold", b, 0),
            ],
        )
        placed = submit_one_by_one(api, namespace, [replica("hot-new", "hot")])
        assert placed["hot-new"] == b
        taken = allocations(api, namespace)
        assert len(taken[(b, "gpu-0")]) == 2  # beside the cold share
        assert len(taken[(a, "gpu-0")]) == 1
    finally:
        dra.withdraw(api, node_pool.node_names)
