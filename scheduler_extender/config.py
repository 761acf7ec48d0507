"""Settings, read from ``SCHEDULER_EXTENDER_*`` environment variables and CLI flags.

A ``Settings`` value is built once by the CLI and passed explicitly to whatever
needs it; nothing reads the environment behind the caller's back.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scheduler_extender.domain.forecast.durations import PATTERN as DURATION_PATTERN
from scheduler_extender.domain.forecast.durations import parse_duration
from scheduler_extender.domain.resources import DEFAULT_GPU_RESOURCE
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, check_weights


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def _seconds(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


# Seconds, or a Prometheus-style duration string such as "30s", "15m", "2d".
Duration = Annotated[
    float,
    BeforeValidator(_seconds),
    Field(gt=0),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                   {"type": "string", "pattern": DURATION_PATTERN}]}
    ),
]  # fmt: skip


def _season_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return [value] if isinstance(value, int | float) else value


# One or several seasons: "1d", "1d,7d", 86400 or a list; each agent gets the one whose
# backtest is best. NoDecode: the environment gives "1d,7d", not JSON.
# The chart passes settings as environment variables, so its schema takes the string form.
_SEASONS_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {
            "type": "string",
            "pattern": DURATION_PATTERN[:-1] + "(," + DURATION_PATTERN[1:-1] + ")*$",
        },
    ],
    "description": "One or several seasons, e.g. 1d or 1d,7d.",
}
Seasons = Annotated[
    tuple[Duration, ...],
    NoDecode,
    BeforeValidator(_season_list),
    Field(min_length=1),
    WithJsonSchema(_SEASONS_SCHEMA),
]


class PrometheusSettings(BaseModel):
    """Where agent popularity comes from: without ``url``, ``static_popularity`` is used.

    Environment: ``SCHEDULER_EXTENDER_PROMETHEUS__<FIELD>``, e.g.
    ``SCHEDULER_EXTENDER_PROMETHEUS__URL=http://prometheus:9090``.
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    query: str = "sum by (agent) (rate(agent_requests_total[1m]))"
    agent_label: str = "agent"  # the label of the query's result that names the agent
    timeout: Duration = 10.0
    retries: int = Field(default=2, ge=0, le=10)
    username: str | None = None  # basic auth
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None  # re-read before every request
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    refresh_interval: Duration = 30.0  # refit from history
    correction_interval: Duration = 10.0  # compare current rates with the forecast
    history: Duration = 2 * 86400.0
    step: Duration = 60.0
    max_age: Duration = 600.0  # then popularity turns neutral
    horizon: Duration = 900.0
    season: Seasons = (86400.0,)
    quantile: float = Field(default=0.9, gt=0, lt=1)
    correction_factor: float = Field(default=2.0, ge=1)
    metrics_top_agents: int = Field(default=10, ge=0, le=1000)  # agents with their own label

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @model_validator(mode="after")
    def _consistent(self) -> PrometheusSettings:
        if self.username is not None and (self.bearer_token or self.bearer_token_file):
            raise ValueError("use basic auth or a bearer token, not both")
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("set bearer_token or bearer_token_file, not both")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        if self.horizon < self.step or self.history < 2 * self.step:
            raise ValueError("horizon must be at least one step and history at least two")
        if len(set(self.season)) != len(self.season) or min(self.season) < 2 * self.step:
            raise ValueError("seasons must differ and each be at least two steps")
        return self


class LeaseSettings(BaseModel):
    """Leader election on a ``coordination.k8s.io`` Lease, for a component run with standbys."""

    model_config = ConfigDict(extra="forbid")

    leader_elect: bool = Field(
        default=True, description="Only the replica holding the Lease acts (keep on with standbys)."
    )
    lease_name: str  # each component's own default
    lease_namespace: str = ""  # empty: the pod's namespace in a cluster, else "default"
    lease_duration: int = Field(
        default=15, ge=2, description="Seconds a standby waits after the last renewal it saw."
    )
    renew_deadline: int = Field(
        default=10, ge=2, description="Seconds the leader keeps trying to renew before giving up."
    )
    retry_period: int = Field(
        default=2,
        ge=1,
        description="Seconds between attempts (leaseDuration > renewDeadline > 1.2 x retryPeriod).",
    )
    identity: str = ""  # empty: hostname and a random suffix

    @model_validator(mode="after")
    def _timing(self) -> LeaseSettings:
        # The client's elector calls sys.exit() on these; refuse them here instead.
        if not self.lease_duration > self.renew_deadline > 1.2 * self.retry_period:
            raise ValueError("need lease_duration > renew_deadline > 1.2 x retry_period")
        return self


class PackerSettings(LeaseSettings):
    """The CP-SAT packing fallback (``pack`` command and background packer).

    Environment: ``SCHEDULER_EXTENDER_PACKER__<FIELD>``, e.g.
    ``SCHEDULER_EXTENDER_PACKER__TIME_LIMIT=1s``.
    """

    model_config = ConfigDict(extra="forbid")

    time_limit: Duration = Field(default=1.0, description="Per solve, model building included.")
    workers: int = Field(
        default=2, ge=1, le=64, description="CP-SAT search workers (CPU cores a solve uses)."
    )
    excluded_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system"],
        description="Namespaces whose pods are never moved or evicted.",
    )
    movable_owner_kinds: list[str] = Field(
        default_factory=lambda: ["ReplicaSet", "StatefulSet"],
        description="Owner kinds whose pods may be moved (their controller recreates them).",
    )
    enabled: bool = Field(default=False, description="Run the background packer in the extender.")
    dry_run: bool = Field(
        default=True, description="Plan and record Events only: never reserve nodes or evict pods."
    )
    interval: Duration = Field(default=5.0, description="Between two looks at unschedulable pods.")
    debounce: Duration = Field(
        default=5.0, description="How long pods must stay unschedulable before a solve."
    )
    min_interval: Duration = Field(default=30.0, description="Between two solves.")
    min_improvement: int = Field(
        default=1,
        ge=1,
        description="Pods a plan must gain at the first improved priority tier to be acted on.",
    )
    reservation_ttl: Duration = Field(
        default=120.0, description="How long a plan holds its target nodes for the pods it places."
    )
    evictions_per_minute: float = Field(
        default=10.0, gt=0, description="Rate limit of the plan's evictions."
    )
    lease_name: str = "scheduler-extender-packer"


class ControllerSettings(LeaseSettings):
    """The AgentAutoscaler controller (``scheduler-extender controller``).

    Environment: ``SCHEDULER_EXTENDER_CONTROLLER__<FIELD>``, e.g.
    ``SCHEDULER_EXTENDER_CONTROLLER__SYNC_INTERVAL=15s``. It reads request
    rates with the ``prometheus`` settings (url, query, step, season, history, horizon,
    quantile) through the same forecast service as the extender.
    """

    model_config = ConfigDict(extra="forbid")

    sync_interval: Duration = 15.0  # between reconcile passes (a change also starts one)
    forecast_refresh: Duration = 60.0  # between history reads and refits
    namespace: str = ""  # AgentAutoscalers of this namespace only; empty: all
    metrics_host: str = "127.0.0.1"  # /metrics, /healthz, /readyz
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    with_extender: bool = False  # also serve the extender in this process (serve's settings)
    lease_name: str = "scheduler-extender-controller"
    gpu_budget: int | None = Field(default=None, ge=0)  # GPUs all autoscaled agents share
    namespace_gpu_budgets: dict[str, int] = Field(default_factory=dict)  # per namespace
    request_timeout: Duration = 10.0  # per Kubernetes API call

    @model_validator(mode="after")
    def _budgets(self) -> ControllerSettings:
        if any(budget < 0 for budget in self.namespace_gpu_budgets.values()):
            raise ValueError("GPU budgets must not be negative")
        return self


class Settings(BaseSettings):
    """Everything the extender service can be told."""

    model_config = SettingsConfigDict(
        env_prefix="SCHEDULER_EXTENDER_", env_nested_delimiter="__", extra="ignore"
    )

    # -- serving
    host: str = "127.0.0.1"
    port: int = Field(default=8888, ge=0, le=65535)
    probe_port: int | None = Field(default=None, ge=0, le=65535)  # plain HTTP probes + metrics
    probe_host: str | None = None  # where the probe server listens; None: ``host``
    url_prefix: str = "/scheduler"
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest request body accepted."
    )
    debug_endpoints: bool = Field(default=False, description="Serve /debug/scores.")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None  # set: client certificates are required

    # -- Kubernetes
    kubeconfig: Path | None = None  # None: in-cluster configuration
    scheduler_name: str = "gpu-scheduler"
    gpu_resource: str = Field(
        default=DEFAULT_GPU_RESOURCE, min_length=1, description="The extended resource of a GPU."
    )
    agent_label: str = Field(
        default="scheduler-extender.io/agent",
        min_length=1,
        description="Pod label whose value names the agent a pod serves.",
    )
    assume_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a bound pod is assumed before a watch event confirms it.",
    )
    max_cache_staleness_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a broken watch may lag before the extender refuses to decide.",
    )
    # service/inflight.py; below kube-scheduler's httpTimeout for the extender (5 s in
    # deploy/scheduler-config.yaml).
    in_flight_wait_seconds: float = Field(
        default=3.0,
        ge=0,
        description="How long a filter waits for the bind of the pod filtered before it.",
    )
    # service/requeue.py: kube-scheduler's retry can outrun our watch.
    requeue_window_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long after a refusal the extender asks kube-scheduler to retry the pod "
        "once a refused node would pass; 0: never.",
    )
    watch_backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between watch retries."
    )
    dra: bool = Field(
        default=True,
        description="Watch ResourceSlices, ResourceClaims and DeviceClasses (resource.k8s.io/v1) "
        "where the API server serves them, and place pods with claims on devices.",
    )

    # -- policy
    score_weights: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description="Scoring policy -> weight (not negative).",
    )
    max_agent_replicas_per_node: int = Field(
        default=0, ge=0, description="0: no limit on one agent's replicas per node."
    )
    # domain/popularity.py, GpuCapacity.
    gpu_model_capacity: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="GPU model (label nvidia.com/gpu.product) -> what one of its GPUs serves "
        "relative to others; unlisted models count 1.0.",
    )
    static_popularity: dict[str, float] = Field(
        default_factory=dict,
        description="Agent -> popularity used when no forecast is available.",
    )
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    packer: PackerSettings = Field(default_factory=PackerSettings)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)

    # -- logging
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT

    @field_validator("url_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = "/" + value.strip("/")
        return "" if value == "/" else value

    @field_validator("score_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        check_weights(value)
        return value

    @field_validator("gpu_model_capacity")
    @classmethod
    def _capacities(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(model for model, c in value.items() if not 0.0 < c < float("inf"))
        if bad:
            raise ValueError(f"GPU model capacities must be finite and > 0; not so for {bad}")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("log level must be one of DEBUG, INFO, WARNING, ERROR")
        return value
