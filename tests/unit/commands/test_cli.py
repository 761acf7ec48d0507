"""The CLI: help on every command, settings errors without tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scheduler_extender import cli


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = cli.parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "serve" in commands
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: scheduler-extender" in capsys.readouterr().out


def test_invalid_settings_exit_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULER_EXTENDER_SCORE_WEIGHTS", '{"nope": 1}')
    assert cli.main(["serve", "--kubeconfig", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "score_weights" in err
    assert "nope" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "value", ['{"NVIDIA-L4": 0}', '{"NVIDIA-L4": -2}', '{"NVIDIA-L4": "fast"}']
)
def test_a_gpu_model_capacity_must_be_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULER_EXTENDER_GPU_MODEL_CAPACITY", value)
    assert cli.main(["serve", "--kubeconfig", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "gpu_model_capacity" in err
    assert "Traceback" not in err


def test_missing_kubeconfig_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--kubeconfig", "/nonexistent/kubeconfig"]) == 2
    assert "/nonexistent/kubeconfig does not exist" in capsys.readouterr().err


def test_bad_port_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err


def test_the_wheel_leaves_the_local_control_plane_out(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv (make install) builds the wheel"
    root = Path(__file__).resolve().parents[3]
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path)], cwd=root, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "scheduler_extender/cli.py" in names
    assert "scheduler_extender/commands/serve.py" in names
    assert not [n for n in names if "devcluster" in n or "commands/demo" in n]


def test_without_the_local_control_plane_the_cli_offers_the_service_commands() -> None:
    # As installed from the wheel: no scheduler_extender.devcluster to find.
    script = (
        "import importlib.util\n"
        "find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n: None if 'devcluster' in n else find(n)\n"
        "from scheduler_extender import cli\n"
        "print(sorted(cli.parser()._subparsers._group_actions[0].choices))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    assert out.strip() == "['controller', 'forecast', 'pack', 'serve']"
