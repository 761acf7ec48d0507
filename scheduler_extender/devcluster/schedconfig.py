"""The kube-scheduler configuration of a local run, derived from deploy/scheduler-config.yaml.

``deploy/scheduler-config.yaml`` is the project's one scheduler configuration.
A local run changes only what differs between a cluster and this machine: the
extender's address (scheme, host and port; the path is kept), the kubeconfig,
and leader election (one local scheduler, restarted at will, must not wait
for a lease). Tests may flip ``ignorable`` or drop the extender (the control
run of kube-scheduler alone); benchmarks may pass further overrides.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from scheduler_extender.devcluster.paths import scheduler_config_path

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"


class SchedulerConfigError(ValueError):
    pass


def load_base(path: Path | None = None) -> dict[str, Any]:
    """The deploy file, checked for what the local run relies on."""
    source = path or scheduler_config_path()
    config = yaml.safe_load(source.read_text())
    if not isinstance(config, dict):
        raise SchedulerConfigError(f"{source}: not a YAML mapping")
    if config.get("apiVersion") != API_VERSION or config.get("kind") != KIND:
        raise SchedulerConfigError(f"{source}: expected a {KIND} of {API_VERSION}")
    if len(config.get("extenders") or []) != 1:
        raise SchedulerConfigError(f"{source}: expected exactly one extender")
    if len(config.get("profiles") or []) != 1:
        raise SchedulerConfigError(f"{source}: expected exactly one profile")
    return config


def scheduler_name(config: Mapping[str, Any]) -> str:
    name: str = config["profiles"][0]["schedulerName"]
    return name


def extender_path(config: Mapping[str, Any]) -> str:
    """The URL path the extender serves its verbs under (its url_prefix setting)."""
    url: str = config["extenders"][0]["urlPrefix"]
    return urlsplit(url).path


def with_extender_address(url_prefix: str, base_url: str) -> str:
    """``url_prefix`` with the scheme, host and port of ``base_url``."""
    prefix = urlsplit(url_prefix)
    base = urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, prefix.path, prefix.query, prefix.fragment))


def deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render_local(
    base: Mapping[str, Any],
    *,
    kubeconfig: Path,
    extender_url: str | None,
    ignorable: bool | None = None,
    overrides: Mapping[str, Any] | None = None,
    extender_tls: Mapping[str, Any] | None = None,
    every_pod: bool = False,
) -> dict[str, Any]:
    """The configuration for one local kube-scheduler.

    ``every_pod``: drop the extender's ``managedResources``, so that kube-scheduler
    calls it for every pod of the profile, not only for GPU pods.

    ``extender_url``: e.g. ``http://127.0.0.1:40123``; None drops the extender.
    ``ignorable``: None keeps the deploy file's value.
    ``extender_tls``: the extender's ``tlsConfig`` (certData, keyData, caData...);
    the scheduler then calls it over HTTPS.
    """
    config = copy.deepcopy(dict(base))
    config["clientConnection"] = {
        **config.get("clientConnection", {}),
        "kubeconfig": str(kubeconfig),
    }
    config["leaderElection"] = {"leaderElect": False}
    if extender_url is None:
        config.pop("extenders", None)
    else:
        extender = config["extenders"][0]
        extender["urlPrefix"] = with_extender_address(extender["urlPrefix"], extender_url)
        if ignorable is not None:
            extender["ignorable"] = ignorable
        if every_pod:
            extender.pop("managedResources", None)
        if extender_tls is not None:
            extender["urlPrefix"] = extender["urlPrefix"].replace("http://", "https://", 1)
            extender["enableHTTPS"] = True
            extender["tlsConfig"] = dict(extender_tls)
    if overrides:
        config = deep_merge(config, overrides)
    return config


def write(config: Mapping[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path
