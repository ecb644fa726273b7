"""The ``simpleim`` command: ``simpleim server|user|<client commands> ...``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from simpleim import __version__
from simpleim.cli.server import add_server_command

__all__ = ["build_parser", "main"]

# (module, function(subparsers)) of the sub-commands other modules provide.
_OPTIONAL_COMMANDS = (
    ("simpleim.cli.users", "add_user_commands"),
    ("simpleim.cli.client", "add_client_commands"),
    ("simpleim.cli.admin", "add_admin_commands"),
    ("simpleim.cli.deferred_cmds", "add_deferred_commands"),
    ("simpleim.cli.history_cmds", "add_history_commands"),
    ("simpleim.cli.xcap_cmds", "add_xcap_commands"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simpleim",
        description="OMA SIMPLE IM / CPM / RCS messaging: SIP + MSRP + CPIM server and tools.",
    )
    parser.add_argument("--version", action="version", version=f"simpleim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_server_command(subparsers)
    _add_optional_commands(subparsers)
    return parser


def _add_optional_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Commands that live in other modules, wired in when those modules are present."""
    for module_name, function in _OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that command is not part of this installation
            raise
        add = getattr(module, function, None)
        if callable(add):
            add(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    result = func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
