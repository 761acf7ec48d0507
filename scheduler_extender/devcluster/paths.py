"""Where the repository's own files are: the pinned tool modules and deploy/."""

from __future__ import annotations

from functools import cache
from pathlib import Path


class RepositoryNotFoundError(RuntimeError):
    """The dev cluster runs from a checkout: it needs hack/ and deploy/."""


@cache
def repo_root() -> Path:
    """The checkout this package was imported from."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "hack" / "tools").is_dir() and (parent / "deploy").is_dir():
            return parent
    raise RepositoryNotFoundError(
        "the local control plane runs from a checkout of scheduler-extender "
        "(hack/tools/ and deploy/ were not found above "
        f"{Path(__file__).resolve().parent})"
    )


def deploy_dir() -> Path:
    return repo_root() / "deploy"


def scheduler_config_path() -> Path:
    return deploy_dir() / "scheduler-config.yaml"


def kwok_dir() -> Path:
    return deploy_dir() / "kwok"
