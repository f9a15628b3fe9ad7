"""Help pages drawn by Click's own formatter, with a little colour on a terminal.

Typer's Rich help imports Rich's Markdown parser, syntax highlighter and
traceback machinery, which took most of ``bfctl --help``'s start-up (it ran
about 8 times as long as a bare ``python -c pass``). Click's plain formatter
needs none of that; this subclass only adds bold headings and cyan option
names when stdout is a terminal (``NO_COLOR`` turns that off), so help stays
fast and readable.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

# Typer vendors Click as the private ``typer._click``: at run time its classes are reached through
# Typer's public ones, the type checker reads them where they are defined.
if TYPE_CHECKING:
    from collections.abc import Sequence

    from typer._click.core import Context as ClickContext
    from typer._click.formatting import HelpFormatter as ClickHelpFormatter
    from typer.core import TyperOption
else:
    ClickHelpFormatter = typer.Context.formatter_class

_BOLD = "\x1b[1m"
_CYAN = "\x1b[36m"
_RESET = "\x1b[0m"

#: Wider than Click's 80 columns, as the Rich pages were, yet short enough to read.
MAX_WIDTH = 100


def _styled() -> bool:
    """Colour only for a person at a terminal: never in a pipe, a file or under NO_COLOR."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _paint(text: str, style: str) -> str:
    return f"{style}{text}{_RESET}" if text and _styled() else text


class HelpFormatter(ClickHelpFormatter):
    """Click's help layout; on a terminal, headings bold and option and command names cyan.

    Click measures columns with ANSI codes stripped, so the styling never shifts the layout.
    """

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        label = (prefix or "Usage: ").rstrip()
        super().write_usage(prog, args, _paint(label, _BOLD) + " ")

    def write_heading(self, heading: str) -> None:
        self.write(f"{'':>{self.current_indent}}{_paint(heading + ':', _BOLD)}\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        super().write_dl([(_paint(first, _CYAN), second) for first, second in rows], col_max, col_spacing)


class HelpContext(typer.Context):
    formatter_class = HelpFormatter


def _plain_flag(option: TyperOption | None) -> TyperOption | None:
    """Give ``--help`` the default ``False`` instead of ``None``.

    Typer (0.2x) coerces a non-bool flag value through a Pydantic adapter, so the group's
    unset ``--help`` would import Pydantic (~100 ms) on the way to ``bfctl serve --help``.
    """
    if option is not None and option.default is None:
        option.default = False
    return option


class _Listed:
    """What groups and commands share: Click-formatted help, and in the parent's command list the
    whole first sentence, wrapped, never cut to ``...``."""

    context_class: type[ClickContext] = HelpContext

    def get_help_option(self, ctx: ClickContext) -> TyperOption | None:
        return _plain_flag(super().get_help_option(ctx))  # type: ignore[misc]  # mixed into click commands

    def get_short_help_str(self, limit: int = 45) -> str:
        listed: str = super().get_short_help_str(limit=1000)  # type: ignore[misc]  # mixed into click commands
        return listed


class Group(_Listed, TyperGroup):
    """The ``bfctl`` group, and groups of subcommands (``bfctl db``): Click-formatted help."""


class Command(_Listed, TyperCommand):
    """A ``bfctl`` subcommand: Click-formatted help (see the module docstring)."""
