"""The ``scheduler-extender`` command line: a thin dispatcher over ``commands``."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

from scheduler_extender import __version__, logs
from scheduler_extender.commands import controller, forecast, pack, serve
from scheduler_extender.commands.common import CommandError, print_error, settings_from


def _development_commands() -> tuple[ModuleType, ...]:
    """dev-cluster, fake-nodes and dashboards: in a source checkout only.

    They run the local control plane (``devcluster/``), which the wheel and the
    container image leave out (``[tool.hatch.build.targets.wheel]``).
    """
    if importlib.util.find_spec("scheduler_extender.devcluster") is None:
        return ()
    from scheduler_extender.commands import dashboards, devcluster

    return (devcluster, dashboards)


# Each module contributes one subcommand: add_parser(subparsers) sets ``run``.
COMMANDS = (serve, *_development_commands(), pack, forecast, controller)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scheduler-extender",
        description="Popularity-aware GPU scheduler extender for Kubernetes.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR")
    p.add_argument("--log-format", dest="log_format", choices=["text", "json"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        fields = ["log_level", "log_format", *getattr(args, "settings_fields", [])]
        args.settings = settings_from(args, fields)
        logs.configure(args.settings.log_level, args.settings.log_format)
        status: int = args.run(args)
    except CommandError as exc:
        print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
