"""Settings -> the Prometheus popularity source, and the service using it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kubernetes import client
from pydantic import ValidationError

from scheduler_extender.adapters.prometheus.source import PrometheusPopularity
from scheduler_extender.adapters.prometheus.wiring import (
    client_options,
    forecast_plan,
    loop_settings,
)
from scheduler_extender.commands.serve import build
from scheduler_extender.config import PrometheusSettings, Settings


def test_durations_and_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_EXTENDER_PROMETHEUS__URL", "https://prom:9090")
    monkeypatch.setenv("SCHEDULER_EXTENDER_PROMETHEUS__HISTORY", "3d")
    monkeypatch.setenv("SCHEDULER_EXTENDER_PROMETHEUS__REFRESH_INTERVAL", "45s")
    monkeypatch.setenv("SCHEDULER_EXTENDER_PROMETHEUS__BEARER_TOKEN", "s3cret")
    prometheus = Settings().prometheus
    assert prometheus.history == 3 * 86400.0
    assert "s3cret" not in repr(prometheus)
    loop = loop_settings(prometheus)
    assert (loop.refresh_interval, loop.horizon) == (45.0, 900.0)
    plan = forecast_plan(prometheus)
    assert (plan.history, plan.step, plan.horizon, plan.seasons) == (
        259200.0,
        60.0,
        900.0,
        (86400.0,),
    )
    options = client_options(prometheus)
    assert options.bearer_token == "s3cret"
    assert options.url == "https://prom:9090"


def test_several_seasons_come_from_the_environment_as_a_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCHEDULER_EXTENDER_PROMETHEUS__SEASON", "1d, 7d")
    assert forecast_plan(Settings().prometheus).seasons == (86400.0, 7 * 86400.0)
    assert PrometheusSettings(season=3600).season == (3600.0,)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "prom:9090"}, "http"),
        ({"username": "u", "bearer_token": "t"}, "not both"),
        ({"key_file": Path("k.pem")}, "cert_file"),
        ({"horizon": "10s"}, "horizon"),
        ({"history": "two days"}, "duration"),
        ({"quantile": 1.0}, "quantile"),
        ({"season": "1d,1d"}, "seasons must differ"),
        ({"season": "1m"}, "two steps"),
        ({"season": ""}, "duration"),
    ],
)
def test_inconsistent_settings_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PrometheusSettings.model_validate(fields)


def test_the_service_uses_prometheus_only_when_a_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = client.ApiClient()
    assert build(Settings(), api).forecast is None

    # Nothing listens on port 1: Prometheus is down from the start.
    service = build(
        Settings(prometheus=PrometheusSettings(url="http://127.0.0.1:1", retries=0)), api
    )
    assert isinstance(service.forecast, PrometheusPopularity)
    monkeypatch.setattr(type(service.cache), "synced", property(lambda self: True))
    try:
        assert not service.forecast.refresh()
        answer = TestClient(service.app).get("/readyz")
        # Informational only: a dead Prometheus never makes the service unready.
        assert answer.status_code == 200
        forecast = answer.json()["checks"]["forecast"]
        assert forecast["source"] == "prometheus"
        assert forecast["up"] is False
        assert forecast["stale"] is True  # nothing fitted: scoring is neutral
        assert forecast["forecast_age_seconds"] is None
        assert "Connect" in forecast["last_error"]
    finally:
        service.forecast.stop()
