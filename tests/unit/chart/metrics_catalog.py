"""Which metric names exist: the service's own registries, and kube-scheduler's that we use.

Every ``adapters`` module is imported; each class whose constructor takes a ``registry`` and
nothing else it requires (the pattern of ``adapters/metrics.py`` and its siblings) is built on a
fresh ``CollectorRegistry``, and its metric families are listed with the sample names Prometheus
will store.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

from prometheus_client import CollectorRegistry

import scheduler_extender.adapters

# Metrics of kube-scheduler itself (pkg/scheduler/metrics/metrics.go), scraped by the chart's
# scheduler ServiceMonitor.
KUBE_SCHEDULER = frozenset({"scheduler_unschedulable_pods", "scheduler_pending_pods"})

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def service_metrics() -> frozenset[str]:
    names: set[str] = set()
    for module in pkgutil.walk_packages(
        scheduler_extender.adapters.__path__, scheduler_extender.adapters.__name__ + "."
    ):
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if not (isinstance(value, type) and value.__module__ == loaded.__name__):
                continue
            try:
                params = inspect.signature(value).parameters
            except (TypeError, ValueError):
                continue
            required = {
                name
                for name, p in params.items()
                if p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            }
            if "registry" not in params or required - {"registry"}:
                continue
            registry = CollectorRegistry()
            value(registry=registry)
            for family in registry.collect():
                names.update(family.name + s for s in SUFFIXES[family.type])
    return frozenset(names)


METRIC = re.compile(r"\b(scheduler_[a-z0-9_]+)\b")


def referenced(expr: str) -> set[str]:
    """Metric names in a PromQL expression (ours all start with ``scheduler_``)."""
    return set(METRIC.findall(expr))
