"""The CLI reference, written from the Typer app each time the site is built.

``docs/reference/cli.md`` holds a marker; this MkDocs hook replaces it with every command's
``--help`` page, as Click formats it, so the reference cannot drift from the commands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- bfctl-cli-reference -->"


def _pages(command: Any, path: list[str], parent: Any) -> Iterator[tuple[list[str], str]]:
    """Each command's name path and help text, a group before its subcommands."""
    import typer

    ctx = typer.Context(command, info_name=path[-1], parent=parent, terminal_width=100)
    yield path, command.get_help(ctx)
    for name in getattr(command, "list_commands", lambda _ctx: [])(ctx):
        yield from _pages(command.get_command(ctx, name), [*path, name], ctx)


def cli_reference() -> str:
    """Markdown for every command of ``bfctl``: a heading and its help page."""
    import typer.main

    from bfctl.cli import app

    os.environ["NO_COLOR"] = "1"  # the help formatter colours a terminal only; a page is not one
    sections = []
    for path, text in _pages(typer.main.get_command(app), ["bfctl"], None):
        heading = "#" * min(len(path) + 2, 5)  # under the page's "Every command"
        sections.append(f"{heading} `{' '.join(path)}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook: fill the marker of the page that has one."""
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
