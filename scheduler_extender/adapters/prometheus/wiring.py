"""Building the forecast service and the popularity source from the settings.

``PrometheusSettings`` holds the only defaults: the extender (``serve``) and
the controller build their forecast here, so they read and fit alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from scheduler_extender.adapters.prometheus.client import ClientOptions, PrometheusClient
from scheduler_extender.adapters.prometheus.forecasting import (
    ForecastPlan,
    ForecastService,
    PrometheusRates,
    Querier,
)
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


def forecast_plan(settings: PrometheusSettings) -> ForecastPlan:
    return ForecastPlan(
        step=settings.step,
        history=settings.history,
        seasons=settings.season,
        horizon=settings.horizon,
        quantile=settings.quantile,
    )


def forecast_service(
    settings: PrometheusSettings,
    *,
    client: Querier | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> ForecastService:
    """The service over ``client``, or a new client whose retry wait is ``sleep``."""
    if client is None:
        client = PrometheusClient(client_options(settings), sleep=sleep)
    rates = PrometheusRates(client, query=settings.query, agent_label=settings.agent_label)
    return ForecastService(rates, forecast_plan(settings))


def loop_settings(settings: PrometheusSettings) -> LoopSettings:
    return LoopSettings(
        refresh_interval=settings.refresh_interval,
        correction_interval=settings.correction_interval,
        max_age=settings.max_age,
        horizon=settings.horizon,
        correction_factor=settings.correction_factor,
    )


def prometheus_popularity(
    settings: PrometheusSettings,
    registry: CollectorRegistry,
    service: ForecastService | None = None,
) -> PrometheusPopularity:
    """The source, not started yet; its metrics go to ``registry``. Pass ``service`` to
    share one with the controller of the same process."""
    stop = threading.Event()
    return PrometheusPopularity(
        service=forecast_service(settings, sleep=stop.wait) if service is None else service,
        settings=loop_settings(settings),
        metrics=ForecastMetrics(registry, settings.metrics_top_agents),
        url=settings.url or "",
        stop_event=stop,
    )
