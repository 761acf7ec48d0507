"""The ``scheduler-extender`` command line: a thin dispatcher over ``commands``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scheduler_extender import __version__, logs
from scheduler_extender.commands import controller, dashboards, devcluster, forecast, pack, serve
from scheduler_extender.commands.common import CommandError, print_error, settings_from

# Each module contributes one subcommand: add_parser(subparsers) sets ``run``.
COMMANDS = (serve, devcluster, dashboards, pack, forecast, controller)


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
