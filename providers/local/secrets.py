"""Secrets on the local target: the environment's value, or one generated once and kept on disk.

A :class:`buildflow.secrets.Secret` named by its environment variable takes that value. Any
other is generated (``secrets.token_urlsafe``) the first time ``bfctl apply`` needs it and kept
in ``<project>/.buildflow/local/<stack>/secrets/<name>`` (directory 0700, file 0600), as the
embedded servers keep their admin password: every later apply and ``bfctl serve`` read the same
value, and neither the state nor any output holds it. ``bfctl destroy`` deletes the folder with
the resources the secrets opened.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from bfctl.providers.state import write_atomic
from buildflow.secrets import Password, Secret

_GENERATED_BYTES = 32


class LocalSecrets:
    """The secrets of one local stack, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def lookup(self, password: Password) -> str | None:
        """A literal as it is; a Secret's value when the environment or its file has one."""
        return password.read(self.directory) if isinstance(password, Secret) else password

    def ensure(self, password: Password) -> str:
        """Like :meth:`lookup`, generating and keeping a Secret's value when it has none yet."""
        found = self.lookup(password)
        if found is not None:
            return found
        assert isinstance(password, Secret)  # a literal is always found
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)  # mkdir's mode is filtered by the umask
        value = secrets.token_urlsafe(_GENERATED_BYTES)
        write_atomic(self.directory / password.name, value.encode(), mode=0o600)
        return value

    def remove(self) -> None:
        """Forget every generated value (the stack that used them is gone)."""
        shutil.rmtree(self.directory, ignore_errors=True)
