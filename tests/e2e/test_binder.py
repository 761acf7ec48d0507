"""The aiohttp binder against the real API server: credentials, conflicts, quoting."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client

from scheduler_extender.adapters.kube.binder import REQUEUED_ANNOTATION, KubeBinder
from scheduler_extender.devcluster import workload
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.ports import BindConflictError
from tests.builders import AGENT_LABEL


def test_binds_fetches_and_refuses_what_the_api_server_refuses(
    api: client.ApiClient, namespace: str
) -> None:
    # No scheduler serves this name: only our binder binds the pod.
    workload.create_pods(
        api, [workload.gpu_pod("solo", namespace=namespace, scheduler_name="none")]
    )

    async def scenario() -> tuple[Pod | None, Pod | None, Pod | None]:
        binder = KubeBinder(api.configuration, agent_label=AGENT_LABEL)
        try:
            pod = await binder.fetch_pod(namespace, "solo")
            assert pod is not None
            assert not pod.node_name
            stale = Pod(pod.name, pod.namespace, "0000-not-the-uid")
            with pytest.raises(BindConflictError, match="UID"):  # the precondition holds
                await binder.bind(stale, "gpu-x")
            await binder.bind(pod, "gpu-x")
            with pytest.raises(BindConflictError):
                await binder.bind(pod, "gpu-y")
            # A name that would climb out of the pod's path is quoted, so it names no pod.
            escaped = await binder.fetch_pod(namespace, "../pods/solo")
            return (
                await binder.fetch_pod(namespace, "solo"),
                escaped,
                await binder.fetch_pod(namespace, "missing"),
            )
        finally:
            await binder.close()

    bound, escaped, missing = asyncio.run(scenario())
    assert bound is not None
    assert bound.node_name == "gpu-x"
    assert escaped is None
    assert missing is None


def test_touch_annotates_the_pod_and_spares_a_recreated_or_missing_one(
    api: client.ApiClient, namespace: str
) -> None:
    workload.create_pods(
        api, [workload.gpu_pod("solo", namespace=namespace, scheduler_name="none")]
    )

    async def scenario() -> tuple[bool, bool, bool]:
        binder = KubeBinder(api.configuration, agent_label=AGENT_LABEL)
        try:
            pod = await binder.fetch_pod(namespace, "solo")
            assert pod is not None
            stale = Pod(pod.name, pod.namespace, "0000-not-the-uid")
            missing = Pod("missing", namespace, pod.uid)
            return (
                await binder.touch(stale),
                await binder.touch(missing),
                await binder.touch(pod),
            )
        finally:
            await binder.close()

    assert asyncio.run(scenario()) == (False, False, True)
    annotations = (
        client.CoreV1Api(api).read_namespaced_pod("solo", namespace).metadata.annotations or {}
    )
    assert REQUEUED_ANNOTATION in annotations
