"""CLI subcommands, one module each, listed in ``scheduler_extender.cli``."""
