"""The Dockerfile, checked without a container engine: its shape (multi-stage, slim, non-root,
no build tools at runtime) and, by running its build stage's own commands, that it installs exactly
the locked runtime dependencies and a working ``scheduler-extender`` entry point."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import Marker

from tests.unit.chart.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse() -> tuple[dict[str, str], list[Stage]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = default
        elif word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            stages.append(Stage(base, parts[2] if len(parts) > 2 else None))
        else:
            stages[-1].instructions.append((word, rest))
    return args, stages


def test_multi_stage_slim_non_root_with_the_cli_as_entrypoint() -> None:
    args, stages = parse()
    final = stages[-1]
    assert len(stages) >= 2
    assert final.name is None
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", final.base), final.base
    python = re.search(r"python:(3\.\d+)", final.base)
    assert python is not None
    version = tuple(int(p) for p in python.group(1).split("."))
    assert version == sys.version_info[:2], "the image's Python is the one the tests run on"
    words = dict(final.instructions)
    user = words["USER"].split(":")[0]
    assert user.isdigit(), "a numeric user, so that runAsNonRoot can check it"
    assert int(user) != 0, "not root"
    assert json.loads(words["ENTRYPOINT"]) == ["scheduler-extender"]
    # Nothing is installed or built in the final stage: no RUN, no compilers, no uv.
    assert "RUN" not in words
    copies = [rest for word, rest in final.instructions if word == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:[0-9.]+", args["UV_IMAGE"]), "uv is pinned"


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    _, stages = parse()
    copied = {
        source.rstrip("/")
        for stage in stages
        for word, rest in stage.instructions
        if word == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    }
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    assert copied == allowed


@pytest.mark.slow
def test_the_build_stage_installs_exactly_the_locked_runtime_dependencies(tmp_path: Path) -> None:
    """Replays the build stage's COPY and RUN lines in a scratch directory (no Docker here)."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is missing: python3 -m pip install uv")
    _, stages = parse()
    (build,) = [s for s in stages if s.name == "build"]
    context = tmp_path / "src"
    context.mkdir()
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env["UV_PYTHON"] = sys._base_executable  # the interpreter the image's python stands for
    runs = 0
    for word, rest in build.instructions:
        if word == "ENV":
            for key, value in (pair.split("=", 1) for pair in shlex.split(rest)):
                env[key] = value
            env["UV_PROJECT_ENVIRONMENT"] = str(venv)  # /opt/venv, relocated
        elif word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                src = REPO / source.rstrip("/")
                if src.is_dir():
                    shutil.copytree(
                        src, context / src.name, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(src, context / src.name)
        elif word == "RUN":
            command = " ".join(p for p in shlex.split(rest) if not p.startswith("--mount="))
            result = subprocess.run(
                command, shell=True, cwd=context, env=env, capture_output=True, text=True,
                timeout=600, check=False,
            )  # fmt: skip
            assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
            runs += 1
    assert runs == 2

    installed = subprocess.run(
        [uv, "pip", "list", "--format", "json", "--python", str(venv / "bin" / "python")],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    got = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(installed.stdout)}
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header"],
        capture_output=True, text=True, check=True, cwd=REPO, env=env,
    )  # fmt: skip
    # The lock forks by environment (e.g. numpy per Python version): keep what applies here, on the
    # image's Python version and platform.
    locked = {}
    for line in exported.stdout.splitlines():
        requirement, _, marker = line.partition(";")
        if "==" not in requirement or line.startswith(" ") or line.startswith("#"):
            continue
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, version = requirement.split("==")
        locked[name.strip().lower().replace("_", "-")] = version.strip()
    got.pop("scheduler-extender")
    assert got == locked
    assert "pytest" not in got
    assert "mypy" not in got

    cli = subprocess.run(
        [str(venv / "bin" / "scheduler-extender"), "--version"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "scheduler-extender" in cli.stdout
