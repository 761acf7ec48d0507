"""resource.k8s.io/v1 objects parsed, watched through the cache's reflectors, and skipped
where the API server does not serve the group."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler_extender.adapters.kube.cache import ClusterCache
from scheduler_extender.adapters.kube.dra_schema import (
    claim_from_json,
    device_class_from_json,
    slice_from_json,
)
from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.adapters.metrics import Metrics
from tests.builders import GPU, pod_json
from tests.dra_builders import DRIVER, claim_json, device_class_json, slice_json

GI = 2**30


def test_a_slice_parses_into_devices_with_attributes_shared_capacity_and_partitions() -> None:
    raw = slice_json("node-a", 2, product="H100", memory="80Gi", clique="dom-1")
    raw["spec"]["sharedCounters"] = [{"name": "gpu-0", "counters": {"memory": {"value": "80Gi"}}}]
    raw["spec"]["devices"][1]["consumesCounters"] = [
        {"counterSet": "gpu-0", "counters": {"memory": {"value": "40Gi"}}}
    ]
    raw["spec"]["devices"][0]["capacity"]["memory"]["requestPolicy"] = {"default": "10Gi"}
    parsed = slice_from_json(raw)
    assert parsed.node == "node-a"
    assert parsed.pool == "node-a"
    assert parsed.generation == 1
    first, second = parsed.devices
    assert first.product == "H100"
    assert first.clique == "dom-1"
    assert first.attribute("index") == 0
    assert first.capacity == {"memory": 80 * GI}
    assert first.default_consumption == {"memory": 10 * GI}
    assert first.shared
    assert second.consumes[0].amounts == {"memory": 40 * GI}
    assert parsed.counter_sets == {"gpu-0": {"memory": 80 * GI}}


def test_a_claim_parses_its_requests_and_its_allocation() -> None:
    pending = claim_from_json(claim_json("c", memory="20Gi", count=1))
    assert not pending.allocated
    (request,) = pending.requests
    assert request.choices[0].capacity == {"memory": 20 * GI}
    done = claim_from_json(
        claim_json("d", memory="20Gi", allocated=[("node-a", "gpu-3")], consumed="20Gi")
    )
    assert done.allocation is not None
    (result,) = done.allocation
    assert result.key == (DRIVER, "node-a", "gpu-3")
    assert result.consumed == {"memory": 20 * GI}
    assert result.share_id == "share-d-0"


def test_admin_access_allocations_take_nothing_from_the_device() -> None:
    raw = claim_json("monitor", allocated=[("node-a", "gpu-0"), ("node-a", "gpu-1")])
    raw["status"]["allocation"]["devices"]["results"][0]["adminAccess"] = True
    parsed = claim_from_json(raw)
    assert parsed.allocated
    assert [r.device for r in parsed.allocation or ()] == ["gpu-1"]


def test_first_available_requests_are_alternatives() -> None:
    raw = claim_json("c")
    raw["spec"]["devices"]["requests"] = [
        {
            "name": "gpu",
            "firstAvailable": [
                {"name": "big", "deviceClassName": "h100"},
                {"name": "small", "deviceClassName": "gpu", "count": 2},
            ],
        }
    ]
    (request,) = claim_from_json(raw).requests
    assert [c.device_class for c in request.choices] == ["h100", "gpu"]
    assert request.choices[1].count == 2


def test_a_device_class_reads_its_cel_selectors() -> None:
    parsed = device_class_from_json(device_class_json("h100", product="H100"))
    (selector,) = parsed.selectors
    assert selector.driver == DRIVER
    assert selector.attributes == ((f"{DRIVER}/productName", "H100"),)


def test_a_pod_names_its_claims_and_the_generated_ones_from_its_status() -> None:
    raw = pod_json("p", 0)
    raw["spec"]["resourceClaims"] = [
        {"name": "mine", "resourceClaimName": "shared-claim"},
        {"name": "gpu", "resourceClaimTemplateName": "one-gpu"},
    ]
    waiting = pod_from_json(raw, "agent")
    assert [(c.claim_name, c.template_name) for c in waiting.claims] == [
        ("shared-claim", ""),
        ("", "one-gpu"),
    ]
    raw["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "p-gpu-x7"}]
    assert pod_from_json(raw, "agent").claims[1].claim_name == "p-gpu-x7"


class Listed:
    """A list answer as the client returns it with ``_preload_content=False``."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.data = json.dumps({"metadata": {"resourceVersion": "7"}, "items": items}).encode()


def cache() -> ClusterCache:
    return ClusterCache(
        client.ApiClient(),
        agent_label="agent",
        assume_timeout=30.0,
        backoff_max=1.0,
        metrics=Metrics(),
        gpu_resource=GPU,
    )


def test_the_cache_lists_slices_claims_and_classes_into_the_snapshot() -> None:
    watched = cache()
    answers = {
        "resourceslice": [slice_json("node-a", 2)],
        "resourceclaim": [
            claim_json("c", memory="30Gi", allocated=[("node-a", "gpu-0")], consumed="30Gi")
        ],
        "deviceclass": [device_class_json()],
    }
    reflectors = {r.name: r for r in watched._dra_reflectors}
    assert set(reflectors) == set(answers)
    for name, items in answers.items():
        reflectors[name]._lister = lambda items=items, **kwargs: Listed(items)
        reflectors[name].list()
    devices = watched.snapshot().devices
    node = devices.of("node-a")
    assert node is not None
    assert [d.free["memory"] for d in node.devices] == [50 * GI, 80 * GI]
    assert "gpu" in devices.classes
    assert "default/c" in devices.claims
    watched.dra_watched = True
    watched._refresh_gauges()
    gauge = watched._metrics.cache_objects
    assert [
        gauge.labels(k)._value.get() for k in ("resourceslice", "resourceclaim", "deviceclass")
    ] == [1, 1, 1]


class _NoGroup:
    def get_api_resources(self, **kwargs: Any) -> None:
        raise ApiException(status=404, reason="Not Found")


def started_reflectors(watched: ClusterCache) -> list[str]:
    """Starts and stops the cache; the kinds whose reflectors it started."""
    started: list[str] = []
    for reflector in (*watched._reflectors, *watched._dra_reflectors):
        reflector.start = lambda r=reflector: started.append(r.name)  # type: ignore[method-assign,misc]
    watched.start()
    watched.stop()
    return started


def test_without_the_dra_group_the_cache_watches_nodes_and_pods_only_and_gets_ready() -> None:
    watched = cache()
    watched._resource_api = _NoGroup()  # type: ignore[assignment]
    assert started_reflectors(watched) == ["node", "pod"]
    assert not watched.dra_watched
    watched.replace("node", lambda: None)
    watched.replace("pod", lambda: None)
    assert watched.synced


def test_with_the_dra_group_readiness_waits_for_the_dra_kinds_too() -> None:
    watched = cache()

    class Served:
        def get_api_resources(self, **kwargs: Any) -> None:
            return None

    watched._resource_api = Served()  # type: ignore[assignment]
    for reflector in watched._dra_reflectors:
        reflector._lister = lambda **kwargs: Listed([])
    started: list[str] = []
    for reflector in (*watched._reflectors, *watched._dra_reflectors):
        reflector.start = lambda r=reflector: started.append(r.name)  # type: ignore[method-assign,misc]
    watched.start()
    watched.stop()
    assert started == ["node", "pod", "resourceslice", "resourceclaim", "deviceclass"]
    watched.replace("node", lambda: None)
    watched.replace("pod", lambda: None)
    assert not watched.synced
    for kind in ("resourceslice", "resourceclaim", "deviceclass"):
        watched.replace(kind, lambda: None)
    assert watched.synced


@pytest.mark.parametrize("dra", [False])
def test_dra_off_builds_no_dra_reflector(dra: bool) -> None:
    off = ClusterCache(
        client.ApiClient(),
        agent_label="agent",
        assume_timeout=30.0,
        backoff_max=1.0,
        metrics=Metrics(),
        gpu_resource=GPU,
        dra=dra,
    )
    assert off._dra_reflectors == ()


def test_without_the_permission_to_list_them_the_dra_kinds_are_not_watched() -> None:
    watched = cache()

    class Served:
        def get_api_resources(self, **kwargs: Any) -> None:
            return None

    def forbidden(**kwargs: Any) -> None:
        raise ApiException(status=403, reason="Forbidden")

    watched._resource_api = Served()  # type: ignore[assignment]
    for reflector in watched._dra_reflectors:
        reflector._lister = lambda **kwargs: Listed([])
    watched._dra_reflectors[1]._lister = forbidden
    assert started_reflectors(watched) == ["node", "pod"]
    assert not watched.dra_watched
