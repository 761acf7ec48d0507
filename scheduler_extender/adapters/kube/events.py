"""Posting Kubernetes Events (core/v1), best effort."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024


def post_event(
    core: client.CoreV1Api,
    involved: Mapping[str, str],
    *,
    component: str,
    instance: str,
    warning: bool,
    reason: str,
    message: str,
    when: datetime,
    timeout: float,
) -> None:
    """Posts an Event about ``involved`` (apiVersion, kind, name, namespace, uid).

    An Event that cannot be written is logged, never raised: events explain,
    they must not stop the work they describe.
    """
    now = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    namespace = involved["namespace"]
    body: Any = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
        "involvedObject": dict(involved),
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": component},
        "reportingComponent": f"scheduler-extender.io/{component}",
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        core.create_namespaced_event(namespace, body, _request_timeout=timeout)
    except (ApiException, OSError) as exc:
        log.warning("cannot record event %s on %s/%s: %s", reason, namespace, involved["name"], exc)
