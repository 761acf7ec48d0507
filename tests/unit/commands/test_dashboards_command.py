"""``scheduler-extender dashboards``: bad input and an unreachable Prometheus are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler_extender import cli
from scheduler_extender.devcluster.processes import free_port


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prometheus", "127.0.0.1:9090"], "expected an http:// or https:// URL"),
        (["--prometheus", "http://127.0.0.1:9090", "--minutes", "0"], "--minutes must be positive"),
        (["--prometheus", "http://127.0.0.1:9090", "--every", "-1"], "--every must be positive"),
        (["--prometheus", "http://127.0.0.1:9090", "--dashboard", "/nonexistent.json"],
         "--dashboard: /nonexistent.json does not exist"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["dashboards", *args]) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_prometheus_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert cli.main(["dashboards", "--prometheus", url, "--out-dir", str(tmp_path)]) == 2
    assert f"cannot draw the dashboards from {url}" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
