"""``scheduler-extender controller``: flags and environment become validated settings."""

from __future__ import annotations

import pytest

from scheduler_extender.cli import main, parser
from scheduler_extender.commands.common import settings_from
from scheduler_extender.commands.controller import FLAGS, effective_settings
from scheduler_extender.config import Settings


def settings_for(argv: list[str]) -> Settings:
    args = parser().parse_args(["controller", *argv])
    args.settings = settings_from(args, ["log_level", "log_format", *FLAGS])
    return effective_settings(args)


def test_flags_fill_the_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_EXTENDER_CONTROLLER__LEASE_NAME", "from-env")
    monkeypatch.setenv("SCHEDULER_EXTENDER_PROMETHEUS__SEASON", "10m")
    settings = settings_for(
        ["--prometheus-url", "http://prometheus:9090", "--sync-interval", "5s",
         "--namespace-gpu-budget", "ml=8", "--namespace-gpu-budget", "batch=2",
         "--gpu-budget", "16", "--no-leader-elect", "--port", "9999"]
    )  # fmt: skip
    controller = settings.controller
    assert controller.sync_interval == 5.0
    assert controller.namespace_gpu_budgets == {"ml": 8, "batch": 2}
    assert (controller.gpu_budget, controller.leader_elect) == (16, False)
    assert controller.lease_name == "from-env"  # the environment still counts
    assert settings.prometheus.url == "http://prometheus:9090"
    assert settings.prometheus.season == (600.0,)
    assert settings.port == 9999


def test_defaults_without_flags() -> None:
    settings = settings_for([])
    assert settings.controller.sync_interval == 15.0
    assert settings.controller.leader_elect is True
    assert settings.prometheus.url is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "reads request rates from Prometheus"),
        (["--prometheus-url", "http://p", "--namespace-gpu-budget", "ml"], "NAMESPACE=GPUS"),
        (["--prometheus-url", "http://p", "--namespace-gpu-budget", "ml=-1"], "negative"),
        (["--prometheus-url", "http://p", "--sync-interval", "soon"], "sync_interval"),
        (["--prometheus-url", "ftp://p"], "prometheus.url"),
    ],
)
def test_bad_settings_are_a_message_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["controller", *argv]) == 2
    assert message in capsys.readouterr().err
