"""Where a gcp stack lives: its Google Cloud project and region, and Pulumi's backend.

Resolved before Pulumi starts, so a missing value is a clear error rather than a failure
half-way through a preview. Precedence for the project and region: the command's flags
(``--gcp-project``, ``--gcp-region``), then ``[tool.buildflow.gcp]`` in ``pyproject.toml``,
then the flow's primitives when they all agree. Every resource is still made in the project
and region its primitive names; these are the provider's defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bfctl.providers.gcp.errors import GCPSettingsError, PassphraseRequiredError
from buildflow.io.primitive import Primitive

PULUMI_DIR = Path(".buildflow") / "pulumi"
_PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


@dataclasses.dataclass(frozen=True)
class GCPSettings:
    """What the Pulumi workspace of one project and stack is made from."""

    project: str | None
    region: str | None
    #: Pulumi project name: ``[tool.buildflow.gcp] pulumi_project``, ``[project] name`` or the directory's.
    pulumi_project: str
    backend_url: str
    #: Directory for Pulumi.yaml and Pulumi.<stack>.yaml (the workspace), inside the project.
    work_dir: Path
    #: ``[tool.buildflow.gcp]`` of pyproject.toml (the service's settings are read from it too).
    table: dict[str, Any] = dataclasses.field(default_factory=dict)

    def require_location(self) -> tuple[str, str]:
        """The project and region, or one error naming the ways to set every missing one (a first
        deploy usually lacks both: one run to learn of each would be one too many)."""
        missing = [kind for kind, value in (("project", self.project), ("region", self.region)) if not value]
        if missing:
            flags = " and ".join(f"--gcp-{kind}" for kind in missing)
            keys = ", ".join(f'{kind} = "..."' for kind in missing)
            raise GCPSettingsError(
                f"no Google Cloud {' or '.join(missing)} for the gcp target: pass {flags}, or set "
                f"{'them' if len(missing) > 1 else 'it'} in pyproject.toml under [tool.buildflow.gcp] ({keys}), "
                "or declare them on the flow's primitives"
            )
        assert self.project and self.region
        return self.project, self.region

    @property
    def manage_apis(self) -> bool:
        """Whether the stack enables the Google APIs it uses (``manage_apis = false`` where the
        deployer may not: a project owner enables them once, and the stack only uses them)."""
        value = self.table.get("manage_apis", True)
        if not isinstance(value, bool):
            raise GCPSettingsError(f"manage_apis in [tool.buildflow.gcp] must be true or false, not {value!r}")
        return value

    @property
    def uses_pulumi_cloud(self) -> bool:
        """Pulumi Cloud encrypts secrets itself; every other backend needs a passphrase."""
        return self.backend_url.startswith(("https://", "http://"))


def _pyproject(project_dir: Path) -> dict[str, Any]:
    try:
        with open(project_dir / "pyproject.toml", "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise GCPSettingsError(f"{project_dir / 'pyproject.toml'} is not valid TOML: {exc}") from None


def _from_primitives(primitives: Sequence[Primitive], attr: str, flag: str) -> str | None:
    values = list(dict.fromkeys(v for p in primitives if isinstance(v := getattr(p, attr, None), str) and v))
    if len(values) > 1:
        raise GCPSettingsError(
            f"the flow's primitives use several values of {attr} ({', '.join(values)}); choose the stack's "
            f"default with --gcp-{flag} or [tool.buildflow.gcp] {flag} in pyproject.toml"
        )
    return values[0] if values else None


def _pulumi_project_name(project_dir: Path, pyproject: dict[str, Any]) -> str:
    gcp = pyproject.get("tool", {}).get("buildflow", {}).get("gcp", {})
    name = gcp.get("pulumi_project") or pyproject.get("project", {}).get("name") or project_dir.name
    return re.sub(r"[^A-Za-z0-9_.-]", "-", str(name)).strip("-.") or "bfctl"


def resolve(
    project_dir: Path,
    stack: str,
    primitives: Sequence[Primitive],
    *,
    project: str | None = None,
    region: str | None = None,
) -> GCPSettings:
    """The settings of ``stack`` for ``primitives``; flags win over pyproject over primitives."""
    pyproject = _pyproject(project_dir)
    table = pyproject.get("tool", {}).get("buildflow", {}).get("gcp", {})
    backend = os.environ.get("PULUMI_BACKEND_URL") or f"file://{project_dir / PULUMI_DIR}"
    return GCPSettings(
        project=project or table.get("project") or _from_primitives(primitives, "project_id", "project"),
        region=region or table.get("region") or _from_primitives(primitives, "region", "region"),
        pulumi_project=_pulumi_project_name(project_dir, pyproject),
        backend_url=backend,
        work_dir=project_dir / PULUMI_DIR / "workspace" / stack,
        table=dict(table),
    )


def passphrase_env(settings: GCPSettings, ask: Callable[[], str] | None) -> dict[str, str]:
    """Environment for Pulumi's secrets: empty when the user's environment has it already.

    The passphrase is handed to the ``pulumi`` process only, never printed or stored.
    """
    if settings.uses_pulumi_cloud or any(os.environ.get(v) for v in _PASSPHRASE_VARS):
        return {}
    if ask is None:
        raise PassphraseRequiredError
    passphrase = ask()
    if not passphrase:
        raise PassphraseRequiredError
    return {"PULUMI_CONFIG_PASSPHRASE": passphrase}
