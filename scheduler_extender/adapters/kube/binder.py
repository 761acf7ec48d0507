"""Binding pods through the API server's ``pods/binding`` subresource."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler_extender.adapters.kube.schema import pod_from_json
from scheduler_extender.domain.objects import Pod
from scheduler_extender.domain.ports import BindConflictError


class KubeBinder:
    def __init__(self, api: client.ApiClient, *, agent_label: str, timeout: float = 10.0) -> None:
        self._core = client.CoreV1Api(api)
        self._agent_label = agent_label
        self._timeout = timeout

    def fetch_pod(self, namespace: str, name: str) -> Pod | None:
        try:
            response: Any = self._core.read_namespaced_pod(
                name, namespace, _preload_content=False, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return pod_from_json(json.loads(response.data), self._agent_label)

    def bind(self, pod: Pod, node_name: str) -> None:
        body: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            # The UID is a precondition: a recreated pod of the same name is refused.
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            # _preload_content=False: the client cannot deserialize the Binding
            # reply (its V1Binding model rejects the empty target it gets back).
            response: Any = self._core.create_namespaced_pod_binding(
                pod.name,
                pod.namespace,
                body,
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            # An unread reply keeps its connection out of the pool: every bind
            # would then open a new TLS connection to the API server.
            response.read()
            response.release_conn()
        except ApiException as exc:
            if exc.status == 409:
                raise BindConflictError(str(exc.reason)) from exc
            raise
