"""Settings, read from ``SCHEDULER_EXTENDER_*`` environment variables and CLI flags.

A ``Settings`` value is built once by the CLI and passed explicitly to whatever
needs it; nothing reads the environment behind the caller's back.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler_extender.domain.resources import DEFAULT_GPU_RESOURCE
from scheduler_extender.domain.scoring.registry import DEFAULT_WEIGHTS, POLICIES


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    """Everything the extender service can be told."""

    model_config = SettingsConfigDict(
        env_prefix="SCHEDULER_EXTENDER_", env_nested_delimiter="__", extra="ignore"
    )

    # -- serving
    host: str = "127.0.0.1"
    port: int = Field(default=8888, ge=0, le=65535)
    url_prefix: str = "/scheduler"
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    debug_endpoints: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None  # set: client certificates are required

    # -- Kubernetes
    kubeconfig: Path | None = None  # None: in-cluster configuration
    scheduler_name: str = "gpu-scheduler"
    gpu_resource: str = DEFAULT_GPU_RESOURCE
    agent_label: str = "scheduler-extender.io/agent"
    assume_timeout_seconds: float = Field(default=30.0, gt=0)
    watch_backoff_max_seconds: float = Field(default=30.0, gt=0)

    # -- policy
    score_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    max_agent_replicas_per_node: int = Field(default=0, ge=0)
    hot_ratio: float = Field(default=1.0, gt=0)
    static_popularity: dict[str, float] = Field(default_factory=dict)

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
        unknown = sorted(set(value) - set(POLICIES))
        if unknown:
            raise ValueError(f"unknown scoring policies {unknown}; known: {sorted(POLICIES)}")
        if any(w < 0 for w in value.values()):
            raise ValueError("scoring weights must not be negative")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("log level must be one of DEBUG, INFO, WARNING, ERROR")
        return value
