"""``bfctl init NAME``: a starter project whose test passes before anything is changed.

The files are templates beside this module (``starter/``, shipped as package data); ``{{name}}``
and ``{{bfctl_version}}`` are the only placeholders.
"""

from __future__ import annotations

import re
from pathlib import Path

import bfctl
from bfctl.infra import Refused

STARTER = Path(__file__).parent / "starter"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
#: Template path (relative to ``STARTER``) -> where it goes in the project.
_FILES = {
    "main.py.tmpl": "main.py",
    "tests/test_main.py.tmpl": "tests/test_main.py",
    "pyproject.toml.tmpl": "pyproject.toml",
    "gitignore.tmpl": ".gitignore",
}


def create_project(name: str, parent: Path) -> Path:
    """Write the starter project into ``parent/name`` (new, or an empty folder); returns it."""
    if not _NAME.fullmatch(name):
        raise Refused(f"`{name}` cannot name a project: use letters, digits, `-` and `_`, starting with a letter")
    root = parent / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise Refused(f"{root} already exists and is not an empty folder; pick another name")
    for template, target in _FILES.items():
        text = (STARTER / template).read_text(encoding="utf-8")
        text = text.replace("{{name}}", name).replace("{{bfctl_version}}", bfctl.__version__)
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
