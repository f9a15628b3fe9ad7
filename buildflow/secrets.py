"""Secrets declared by name, so a password never has to be written in the flow's code.

``Secret("notes-db-password")`` stands wherever a password goes (``SessionDep(db_password=...)``,
``CloudSQLUser(password=...)``). It is a declaration only: nothing is read when the flow module
is imported. Its value is looked up when something needs it, in this order:

1. the environment variable :attr:`Secret.env_var`: ``Secret(name, env="VAR")`` names it, and
   otherwise it is ``BUILDFLOW_SECRET_`` followed by the name upper-cased, with every character
   that is not a letter or a digit written as ``_`` (``notes-db-password`` →
   ``BUILDFLOW_SECRET_NOTES_DB_PASSWORD``);
2. the file named after the secret in the directory ``$BUILDFLOW_SECRETS_DIR``, which
   ``bfctl serve`` sets to where the target keeps its secrets (on the local target,
   ``.buildflow/local/<stack>/secrets/``, filled by ``bfctl apply``).

One contract for every target: wherever the flow runs, the value arrives as that variable or
that file, and the code that reads it does not know which target made it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

__all__ = ["SECRETS_DIR_ENV", "Password", "Secret", "SecretNotFoundError", "reveal"]

#: The environment variable naming the directory of secret files.
SECRETS_DIR_ENV = "BUILDFLOW_SECRETS_DIR"
_ENV_PREFIX = "BUILDFLOW_SECRET_"
# Secret Manager's rule for secret ids, which also makes every name a safe file name.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretNotFoundError(LookupError):
    """A secret's value is in neither its environment variable nor its file."""


@dataclasses.dataclass(frozen=True)
class Secret:
    """A secret value known by ``name``; ``env`` names the variable that gives it, if not the default."""

    name: str
    env: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                f"Secret name {self.name!r} is not valid: use 1 to 255 letters, digits, '-' or '_' "
                "(e.g. 'notes-db-password')"
            )
        if self.env is not None and (not isinstance(self.env, str) or not _ENV_NAME.fullmatch(self.env)):
            raise ValueError(f"Secret env {self.env!r} is not an environment variable name (e.g. 'NOTES_DB_PASSWORD')")

    @property
    def env_var(self) -> str:
        """The environment variable whose value, when set, is the secret's."""
        return self.env or _ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", self.name).upper()

    def read(self, directory: str | os.PathLike[str] | None = None) -> str | None:
        """The value from the environment, else from ``<directory>/<name>`` (by default the
        directory ``$BUILDFLOW_SECRETS_DIR`` names); None when neither has it. A file's trailing
        line break is not part of the value, so a file written with ``echo`` works."""
        from_env = os.environ.get(self.env_var)
        if from_env:
            return from_env
        folder = directory if directory is not None else os.environ.get(SECRETS_DIR_ENV)
        if not folder:
            return None
        try:
            value = (Path(folder) / self.name).read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            return None
        return value or None

    def value(self) -> str:
        """The value, or SecretNotFoundError saying where it was looked for."""
        found = self.read()
        if found is None:
            folder = os.environ.get(SECRETS_DIR_ENV)
            where = f" nor in {Path(folder) / self.name}" if folder else ""
            raise SecretNotFoundError(
                f"secret {self.name!r} is not set: not in the environment variable {self.env_var}{where}. "
                f"Run `bfctl apply` and serve with `bfctl serve`, or set {self.env_var}."
            )
        return found


#: What a password parameter takes: a literal (BuildFlow's way, shipped with the code) or a Secret.
Password = str | Secret


def reveal(password: Password) -> str:
    """The password itself: a literal as it is, a Secret's value looked up now."""
    return password.value() if isinstance(password, Secret) else password
