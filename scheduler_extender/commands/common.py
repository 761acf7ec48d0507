"""Helpers shared by the subcommands: settings from flags, Kubernetes clients."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from kubernetes import client, config
from pydantic import ValidationError

from scheduler_extender.config import Settings


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def fail(message: str) -> NoReturn:
    raise CommandError(message)


def settings_from(args: argparse.Namespace, fields: list[str]) -> Settings:
    """Environment first, then any flag the user gave (flags win)."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in fields if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid settings: {problems}")


# kube-scheduler sends binds concurrently; urllib3 discards connections beyond
# the pool size (the client's default is 5 per core), so each extra bind would
# pay a new TLS handshake.
CONNECTION_POOL_SIZE = 64


def kube_client(kubeconfig: Path | None) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    try:
        if kubeconfig is not None:
            if not kubeconfig.is_file():
                fail(f"--kubeconfig: {kubeconfig} does not exist")
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except config.ConfigException as exc:
        fail(f"cannot configure the Kubernetes client: {exc} (pass --kubeconfig outside a cluster)")


def print_error(message: str) -> None:
    print(f"scheduler-extender: error: {message}", file=sys.stderr)
