from __future__ import annotations

from tests.unit.conftest import Harness


def test_healthz_readyz_and_metrics(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"status": "ok"}
    ready = harness.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["cache"]["synced"] is True
    harness.client.post(
        "/scheduler/filter", json={"Pod": {"metadata": {"name": "p"}}, "NodeNames": []}
    )
    text = harness.client.get("/metrics").text
    assert 'scheduler_extender_request_duration_seconds_count{verb="filter"} 1.0' in text
    assert 'scheduler_extender_decisions_total{outcome="none_feasible",verb="filter"} 1.0' in text
