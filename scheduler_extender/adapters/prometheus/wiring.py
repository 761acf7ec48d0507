"""Building the Prometheus popularity source from the service settings."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from scheduler_extender.adapters.prometheus.client import ClientOptions, PrometheusClient
from scheduler_extender.adapters.prometheus.metrics import ForecastMetrics
from scheduler_extender.adapters.prometheus.source import LoopSettings, PrometheusPopularity
from scheduler_extender.config import PrometheusSettings


def client_options(settings: PrometheusSettings) -> ClientOptions:
    if settings.url is None:
        raise ValueError("no Prometheus URL configured")
    return ClientOptions(
        url=settings.url,
        timeout=settings.timeout,
        retries=settings.retries,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        bearer_token=settings.bearer_token.get_secret_value() if settings.bearer_token else None,
        bearer_token_file=settings.bearer_token_file,
        ca_file=settings.ca_file,
        cert_file=settings.cert_file,
        key_file=settings.key_file,
        insecure_skip_verify=settings.insecure_skip_verify,
    )


def loop_settings(settings: PrometheusSettings) -> LoopSettings:
    return LoopSettings(
        query=settings.query,
        agent_label=settings.agent_label,
        refresh_interval=settings.refresh_interval,
        correction_interval=settings.correction_interval,
        history=settings.history,
        step=settings.step,
        max_age=settings.max_age,
        horizon=settings.horizon,
        season=settings.season,
        quantile=settings.quantile,
        correction_factor=settings.correction_factor,
    )


def prometheus_popularity(
    settings: PrometheusSettings, registry: CollectorRegistry
) -> PrometheusPopularity:
    """The source, not started yet; its metrics go to ``registry``."""
    stop = threading.Event()
    return PrometheusPopularity(
        client=PrometheusClient(client_options(settings), sleep=stop.wait),
        settings=loop_settings(settings),
        metrics=ForecastMetrics(registry, settings.metrics_top_agents),
        url=settings.url or "",
        stop_event=stop,
    )
