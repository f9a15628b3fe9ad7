"""``from runtime.testing import TestClient``, the import of tests that ``bfctl init`` wrote
before the client moved to ``bfctl.testing``, keeps working for one more release.

A pytest plugin (registered under ``pytest11``) puts a finder at the *end* of ``sys.meta_path``
that knows exactly two names, ``runtime`` and ``runtime.testing``. Being last, it answers only
when nothing on ``sys.path`` is called ``runtime``: a project with its own ``runtime.py`` or
``runtime/`` package gets its own module, which is why bfctl installs no package of that name.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

OLD, OLD_PACKAGE, NEW = "runtime.testing", "runtime", "bfctl.testing"


class OldTestingPath(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the old path only; every other name is left to the finders before it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in (OLD, OLD_PACKAGE):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname == OLD_PACKAGE)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        if module.__name__ != OLD:
            return
        warnings.warn(
            f"`{OLD}` is now `{NEW}`: import `from {NEW} import TestClient` (the old path goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        from bfctl.testing import TestClient, TestResponse

        module.TestClient, module.TestResponse = TestClient, TestResponse  # type: ignore[attr-defined]


def pytest_configure() -> None:
    if not any(isinstance(finder, OldTestingPath) for finder in sys.meta_path):
        sys.meta_path.append(OldTestingPath())
