"""The ``journey`` command: one module per group of subcommands, each of which parses its
arguments, calls the use cases (journey/usecases/) and prints. :mod:`journey.cli.main` builds
the parser and runs a command; exit codes are listed there."""

from journey.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
