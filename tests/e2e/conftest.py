"""Fixtures for end-to-end tests against a real local control plane.

One control plane is shared by the whole session (starting it takes ~10 s):
etcd, kube-apiserver, kube-controller-manager, kwok with deploy/kwok/stages.yaml,
kube-scheduler configured from deploy/scheduler-config.yaml, and our extender
(``python -m scheduler_extender.cli serve``), all on 127.0.0.1. Every test in
this directory is marked ``e2e`` automatically. When the binaries are missing
the tests FAIL (they never skip) and say to run ``make tools``.

Isolation: cluster-scoped things are shared, so each test works in its own
``namespace`` and on its own fake nodes (``node_pool``), which are labelled and
tainted so that only that test's pods land on them. Both are deleted after the
test. A test that reconfigures the scheduler or the extender uses
``reconfigurable_cluster``, which puts the default setup back afterwards.

Session fixtures
    ``tools``    -> ``Tools``: paths of every binary (``tools.helm``, ``tools.kubectl``,
                    ``tools.kube_apiserver``, ...) and ``tools.kubernetes_version``.
    ``cluster``  -> ``LocalCluster`` (scheduler_extender/devcluster/cluster.py):
        ``cluster.kubeconfig``          path of an admin (system:masters) kubeconfig
        ``cluster.server``              API server URL, https://127.0.0.1:<port>
        ``cluster.api_client()``        a shared ``kubernetes.client.ApiClient``
        ``cluster.kubectl(*args, input=None, check=True)``
                                        runs kubectl; returns CompletedProcess[str]
                                        (e.g. ``cluster.kubectl("auth", "can-i", "create",
                                        "pods/binding", "--as=system:serviceaccount:ns:sa")``)
        ``cluster.scheduler_name``      the profile our workloads use ("gpu-scheduler")
        ``cluster.extender_endpoint``   ``.url``, ``.metrics_url``, ``.readyz_url``, ``.port``
        ``cluster.start_extender(env=None, args=(), port=None)``
                                        (re)starts the extender with extra environment
                                        (SCHEDULER_EXTENDER_*) or flags; waits for /readyz
        ``cluster.stop_extender()``
        ``cluster.start_scheduler(extender=True, ignorable=None, overrides=None)``
                                        (re)starts kube-scheduler; ``extender=False`` is
                                        kube-scheduler alone (a control run); ``ignorable``
                                        overrides the deploy file's value; ``overrides`` is
                                        deep-merged into the KubeSchedulerConfiguration;
                                        returns the rendered config file
        ``cluster.stop_scheduler()``
        ``cluster.logs``                component -> log file (etcd, kube-apiserver,
                                        kube-controller-manager, kwok, kube-scheduler,
                                        extender); ``cluster.run_dir`` holds pki/ too
    ``api``      -> ``cluster.api_client()``

Function fixtures
    ``namespace``    -> name of a fresh namespace (default ServiceAccount ready);
                        its pods are deleted after the test.
    ``node_pool``    -> ``NodePool`` (tests/e2e/helpers.py) with no nodes yet:
                        ``node_pool.add(count, gpus="mix"|1|4|8)`` creates fake GPU nodes
                        and waits until they are schedulable; ``node_pool.pod(name,
                        namespace=..., gpus=1, agent=None)`` builds a pod that can only land
                        there; ``node_pool.placement`` gives the nodeSelector/tolerations for
                        your own manifests (e.g. Deployments).
    ``reconfigurable_cluster`` -> ``cluster``, restored afterwards to the session's
                        default extender and scheduler.

tests/e2e/helpers.py also has ``wait_for``, ``list_pods``, ``bound``, ``events_for``,
``overallocated`` and ``extender_decisions`` (the extender's decision counters).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from scheduler_extender.devcluster import workload
from scheduler_extender.devcluster.cluster import ClusterOptions, LocalCluster
from scheduler_extender.devcluster.tools import Tools, ToolsMissingError, locate_tools
from tests.e2e.helpers import NodePool, list_pods, wait_for

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    cluster = item.funcargs.get("cluster") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(cluster, LocalCluster):
        listing = "\n".join(f"{name}: {path}" for name, path in cluster.logs.items())
        report.sections.append(("local control plane logs", listing))
    return report


@pytest.fixture(scope="session")
def tools() -> Tools:
    try:
        return locate_tools()
    except ToolsMissingError as exc:
        pytest.fail(f"e2e tests need the control-plane binaries: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def cluster(
    tools: Tools, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalCluster]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    run_dir = tmp_path_factory.mktemp("control-plane")
    with LocalCluster(ClusterOptions(run_dir=run_dir), tools) as local:
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"local control plane ready in {local.startup_seconds:.1f} s; logs in {local.logs_dir}"
            )
        yield local


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> client.ApiClient:
    return cluster.api_client()


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    workload.ensure_namespace(api, name)
    yield name
    core = client.CoreV1Api(api)
    # Pods first, and wait: a later test must not see this test's pods in the
    # scheduler's or the extender's accounting. The namespace itself can go
    # in the background.
    core.delete_collection_namespaced_pod(name, grace_period_seconds=0, _preload_content=False)
    wait_for(f"the pods of {name} to go", lambda: not list_pods(api, name), timeout=60)
    core.delete_namespace(name, _preload_content=False)


@pytest.fixture
def node_pool(cluster: LocalCluster, api: client.ApiClient) -> Iterator[NodePool]:
    pool = NodePool(f"p{uuid.uuid4().hex[:6]}", api, cluster.scheduler_name)
    yield pool
    pool.delete()


@pytest.fixture
def reconfigurable_cluster(cluster: LocalCluster) -> Iterator[LocalCluster]:
    yield cluster
    cluster.start_extender(env=cluster.options.extender_env, args=cluster.options.extender_args)
    cluster.start_scheduler(extender=True)


@pytest.fixture
def classes(api: client.ApiClient) -> Iterator[tuple[str, str]]:
    """(high, low) PriorityClasses that never preempt: only the packer can help."""
    suffix = uuid.uuid4().hex[:6]
    scheduling = client.SchedulingV1Api(api)
    names = (f"e2e-high-{suffix}", f"e2e-low-{suffix}")
    for name, value in zip(names, (100_000, 1_000), strict=True):
        body: Any = {  # the client's models accept plain dicts; its stubs do not say so
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "preemptionPolicy": "Never",
        }
        scheduling.create_priority_class(body)
    yield names
    for name in names:
        scheduling.delete_priority_class(name)
