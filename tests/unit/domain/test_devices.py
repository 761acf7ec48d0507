"""DRA device accounting: slices, allocations of claims, shares and partitions, pod demand."""

from __future__ import annotations

from collections.abc import Mapping

from scheduler_extender.domain.devices import (
    AllocatedDevice,
    Claim,
    Counters,
    Device,
    DeviceBook,
    DeviceChoice,
    DeviceClass,
    DeviceRequest,
    Devices,
    DeviceSlice,
    PodClaim,
    choice_fits,
    freeze_devices,
    parse_selector,
    pod_devices,
    predict_allocation,
    request_fits,
)

DRIVER = "gpu.example.com"
GI = 2**30
WHOLE = DeviceClass("gpu", (parse_selector(f'device.driver == "{DRIVER}"'),))
H100 = DeviceClass(
    "h100",
    (
        parse_selector(
            f'device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].productName == "H100"'
        ),
    ),
)


def gpu(
    name: str,
    *,
    product: str = "H100",
    memory: int = 80 * GI,
    shared: bool = False,
    pool: str = "node-a",
    consumes: tuple[Counters, ...] = (),
) -> Device:
    return Device(
        DRIVER,
        pool,
        name,
        attributes={f"{DRIVER}/productName": product, f"{DRIVER}/clique": "c1"},
        capacity={"memory": memory},
        shared=shared,
        consumes=consumes,
    )


def node_slice(
    node: str,
    *devices: Device,
    generation: int = 0,
    counters: Mapping[str, Mapping[str, int]] | None = None,
) -> DeviceSlice:
    return DeviceSlice(f"{node}-gpus", DRIVER, node, node, generation, devices, counters or {})


def result(device: str, pool: str = "node-a", memory: int = 0, share: str = "") -> AllocatedDevice:
    return AllocatedDevice("gpu", DRIVER, pool, device, share, {"memory": memory} if memory else {})


def claim(
    name: str, *choices: DeviceChoice, allocation: tuple[AllocatedDevice, ...] | None = None
) -> Claim:
    return Claim("default", name, f"uid-{name}", (DeviceRequest("gpu", choices),), allocation)


def test_selectors_read_driver_and_attribute_equalities_and_nothing_more() -> None:
    device = gpu("gpu-0")
    assert parse_selector(f'device.driver == "{DRIVER}"').matches(device)
    assert not parse_selector('device.driver == "other"').matches(device)
    by_index = parse_selector(f'device.attributes["{DRIVER}"]["productName"] == "A100"')
    assert by_index.exact
    assert not by_index.matches(device)
    # A clause it cannot read matches everything (a superset of the class: never stricter).
    vague = parse_selector('device.capacity["x"].memory.compareTo(quantity("10Gi")) >= 0')
    assert not vague.exact
    assert vague.matches(device)
    assert parse_selector('device.driver == "a" || device.driver == "b"').matches(device)


def test_whole_devices_are_free_until_an_allocation_names_them() -> None:
    devices = freeze_devices(
        [node_slice("node-a", gpu("gpu-0"), gpu("gpu-1"))],
        [claim("c", DeviceChoice("gpu"), allocation=(result("gpu-0"),))],
        [WHOLE],
    )
    node = devices.of("node-a")
    assert node is not None
    assert [d.untouched for d in node.devices] == [False, True]
    assert node.devices[0].free["memory"] == 0
    assert node.summary().untouched == 1
    assert choice_fits(DeviceChoice("gpu", count=1), devices, node) is True
    assert choice_fits(DeviceChoice("gpu", count=2), devices, node) is False


def test_shares_consume_capacity_of_a_shared_device() -> None:
    devices = freeze_devices(
        [node_slice("node-a", gpu("gpu-0", shared=True), gpu("gpu-1", shared=True))],
        [
            claim("a", allocation=(result("gpu-0", memory=30 * GI, share="s1"),)),
            claim("b", allocation=(result("gpu-0", memory=40 * GI, share="s2"),)),
        ],
        [WHOLE],
    )
    node = devices.of("node-a")
    assert node is not None
    first, second = node.devices
    assert first.allocations == 2
    assert first.free["memory"] == 10 * GI
    assert first.fits_share({"memory": 10 * GI})
    assert not first.fits_share({"memory": 11 * GI})
    assert second.untouched
    # A share with no amount takes the whole capacity: only the untouched device fits it.
    assert not first.fits_share({})
    assert second.fits_share({})
    twenty = DeviceChoice("gpu", capacity={"memory": 20 * GI})
    assert choice_fits(twenty, devices, node) is True
    # Two 20Gi shares: the untouched device holds four (one request may get one device twice
    # or not: the rule lets it through either way); three 30Gi shares find room for two only.
    assert (
        choice_fits(DeviceChoice("gpu", count=2, capacity={"memory": 20 * GI}), devices, node)
        is True
    )
    assert (
        choice_fits(DeviceChoice("gpu", count=3, capacity={"memory": 30 * GI}), devices, node)
        is False
    )
    assert node.summary().shared_in_use == 1


def test_partitions_are_closed_once_their_counters_are_used_up() -> None:
    memory = {"memory": 80}
    whole = gpu("gpu-0", consumes=(Counters("gpu-0-counters", {"memory": 80}),))
    halves = [
        gpu(f"gpu-0-half-{i}", memory=40, consumes=(Counters("gpu-0-counters", {"memory": 40}),))
        for i in range(2)
    ]
    s = node_slice("node-a", whole, *halves, counters={"gpu-0-counters": memory})
    one_half = freeze_devices([s], [claim("a", allocation=(result("gpu-0-half-0"),))], [WHOLE])
    node = one_half.of("node-a")
    assert node is not None
    available = {d.device.name: d.available for d in node.devices}
    assert available == {"gpu-0": False, "gpu-0-half-0": False, "gpu-0-half-1": True}
    untouched = freeze_devices([s], [], [WHOLE]).of("node-a")
    assert untouched is not None
    assert all(d.available for d in untouched.devices)


def test_partitions_consume_the_counters_another_slice_of_their_pool_publishes() -> None:
    # resource.k8s.io/v1: a slice carries devices or shared counters, never both.
    counters = DeviceSlice(
        "node-a-counters", DRIVER, "node-a", "node-a", 0, (), {"gpu-0-counters": {"memory": 80}}
    )
    halves = [
        gpu(f"gpu-0-half-{i}", memory=40, consumes=(Counters("gpu-0-counters", {"memory": 40}),))
        for i in range(2)
    ]
    whole = gpu("gpu-0", consumes=(Counters("gpu-0-counters", {"memory": 80}),))
    partitions = DeviceSlice("node-a-devices", DRIVER, "node-a", "node-a", 0, (whole, *halves))
    free = freeze_devices([counters, partitions], [], [WHOLE])
    node = free.of("node-a")
    assert node is not None
    assert all(d.available for d in node.devices)
    assert choice_fits(DeviceChoice("gpu", count=3), free, node) is True  # by count alone
    one_half = freeze_devices(
        [counters, partitions], [claim("a", allocation=(result("gpu-0-half-1"),))], [WHOLE]
    )
    node = one_half.of("node-a")
    assert node is not None
    available = {d.device.name: d.available for d in node.devices}
    assert available == {"gpu-0": False, "gpu-0-half-0": True, "gpu-0-half-1": False}
    assert choice_fits(DeviceChoice("gpu", count=2), one_half, node) is False


def test_only_the_newest_generation_of_a_pool_counts_and_detached_devices_give_no_opinion() -> None:
    old = node_slice("node-a", gpu("gpu-0"), gpu("gpu-1"), generation=1)
    new = DeviceSlice("node-a-new", DRIVER, "node-a", "node-a", 2, (gpu("gpu-0"),))
    devices = freeze_devices([old, new], [], [WHOLE])
    node = devices.of("node-a")
    assert node is not None
    assert [d.device.name for d in node.devices] == ["gpu-0"]
    network = DeviceSlice("fabric", DRIVER, "fabric", "", 0, (gpu("remote", pool="fabric"),))
    with_remote = freeze_devices([new, network], [], [WHOLE])
    assert choice_fits(DeviceChoice("gpu", count=4), with_remote, with_remote.of("node-a")) is None
    assert with_remote.located[(DRIVER, "fabric", "remote")] == ""


def test_classes_restrict_by_product_and_an_unknown_class_gives_no_opinion() -> None:
    devices = freeze_devices([node_slice("node-a", gpu("gpu-0", product="L4"))], [], [WHOLE, H100])
    node = devices.of("node-a")
    assert choice_fits(DeviceChoice("gpu"), devices, node) is True
    assert choice_fits(DeviceChoice("h100"), devices, node) is False
    assert choice_fits(DeviceChoice("missing"), devices, node) is None
    # firstAvailable: any alternative that fits satisfies the request.
    either = DeviceRequest("gpu", (DeviceChoice("h100"), DeviceChoice("gpu")))
    assert request_fits(either, devices, node)
    assert not request_fits(DeviceRequest("gpu", (DeviceChoice("h100"),)), devices, node)
    # A node without devices cannot take a device request.
    assert not request_fits(DeviceRequest("gpu", (DeviceChoice("gpu"),)), devices, None)


def test_a_pods_demand_comes_from_its_claims_pending_allocated_or_unknown() -> None:
    pending = claim("pending", DeviceChoice("gpu", count=2))
    done = claim("done", DeviceChoice("gpu"), allocation=(result("gpu-0"),))
    devices = freeze_devices([node_slice("node-a", gpu("gpu-0"))], [pending, done], [WHOLE])
    demand = pod_devices(
        "default",
        (PodClaim("a", "pending"), PodClaim("b", "done"), PodClaim("c", "", "from-template")),
        devices,
    )
    assert demand.pending == pending.requests
    assert demand.allocated == done.allocation
    assert demand.unknown == 1  # generated from a template: its name is not in the status yet
    assert not pod_devices("default", (), devices)


def test_the_predicted_allocation_is_first_fit_in_slice_order() -> None:
    devices = freeze_devices(
        [node_slice("node-a", gpu("gpu-0", shared=True), gpu("gpu-1", shared=True))],
        [claim("a", allocation=(result("gpu-0", memory=70 * GI, share="s"),))],
        [WHOLE],
    )
    node = devices.of("node-a")
    assert node is not None
    small = DeviceRequest("gpu", (DeviceChoice("gpu", capacity={"memory": 10 * GI}),))
    assert predict_allocation(small, devices, node) == ((0, {"memory": 10 * GI}),)
    large = DeviceRequest("gpu", (DeviceChoice("gpu", capacity={"memory": 20 * GI}),))
    assert predict_allocation(large, devices, node) == ((1, {"memory": 20 * GI}),)
    too_many = DeviceRequest("gpu", (DeviceChoice("gpu", count=3),))
    assert predict_allocation(too_many, devices, node) == ()


def test_the_book_kept_event_by_event_agrees_with_a_view_from_scratch() -> None:
    book = DeviceBook()
    slices = {
        n: node_slice(n, gpu("gpu-0", shared=True, pool=n), gpu("gpu-1", pool=n))
        for n in ("node-a", "node-b")
    }
    claims: dict[str, Claim] = {}
    classes = [WHOLE]
    book.replace_classes(classes)

    def check() -> Devices:
        kept = book.freeze()
        fresh = freeze_devices(slices.values(), claims.values(), classes)
        assert kept.nodes == fresh.nodes
        assert kept.located == fresh.located
        assert kept.claims == fresh.claims
        return kept

    for s in slices.values():
        book.upsert_slice(s)
    first = check()
    events: list[Claim] = [
        claim("a", allocation=(result("gpu-0", pool="node-a", memory=30 * GI, share="s"),)),
        claim("b", allocation=(result("gpu-1", pool="node-b"),)),
        claim("a", allocation=(result("gpu-0", pool="node-a", memory=50 * GI, share="s"),)),
        claim("c", DeviceChoice("gpu")),  # pending: no device
    ]
    for event in events:
        claims[event.key] = event
        book.upsert_claim(event)
        check()
    after = check()
    assert after.nodes["node-a"] is not first.nodes["node-a"]
    book.upsert_claim(claims["default/c"])  # no change: nothing rebuilt
    assert book.freeze().nodes["node-b"] is after.nodes["node-b"]
    del claims["default/b"]
    book.delete_claim("default/b")
    check()
    # A new generation of node-b's pool replaces its devices; node-a's view is kept as it was.
    slices["node-b-v2"] = DeviceSlice(
        "node-b-v2", DRIVER, "node-b", "node-b", 1, (gpu("gpu-9", pool="node-b"),)
    )
    book.upsert_slice(slices["node-b-v2"])
    replaced = check()
    assert [d.device.name for d in replaced.nodes["node-b"].devices] == ["gpu-9"]
    assert replaced.nodes["node-a"] is after.nodes["node-a"]
    del slices["node-a"]
    book.delete_slice("node-a-gpus")
    assert "node-a" not in check().nodes
