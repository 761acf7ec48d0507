"""Metrics computed at scrape time."""

from __future__ import annotations

from prometheus_client import generate_latest

from scheduler_extender.adapters.metrics import Metrics


def test_node_gpus_are_read_from_the_source_at_each_scrape() -> None:
    metrics = Metrics()
    nodes = [("gpu-a", 8, 3)]
    metrics.node_gpus.source = lambda: nodes
    text = generate_latest(metrics.registry).decode()
    assert 'scheduler_extender_node_gpus{node="gpu-a",state="allocatable"} 8.0' in text
    assert 'scheduler_extender_node_gpus{node="gpu-a",state="allocated"} 3.0' in text
    nodes[:] = [("gpu-b", 4, 0)]  # a deleted node's series disappears with it
    text = generate_latest(metrics.registry).decode()
    assert 'node="gpu-a"' not in text
    assert 'scheduler_extender_node_gpus{node="gpu-b",state="allocated"} 0.0' in text
