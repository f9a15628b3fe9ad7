"""Find and import the user's flow.

A target names a module or a ``.py`` file plus an attribute, the way
BuildFlow's ``entry_point`` did (``main:app``).  Importing user code is where
most first-run mistakes surface, so every failure becomes a
:class:`FlowLoadError` whose message says what was tried, and import errors
carry a traceback trimmed to the frames worth reading: importlib, the
standard library and this distribution's own packages only bury the line the
user has to fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from bfctl.tracebacks import drop_foreign_frames

if TYPE_CHECKING:
    from buildflow import Flow

DEFAULT_ATTR = "app"
PYPROJECT = "pyproject.toml"
BUILDFLOW_YAML = "buildflow.yaml"


class FlowLoadError(Exception):
    """The flow could not be loaded; ``str()`` is a complete user-facing
    message and ``user_traceback`` (if any) is the trimmed traceback of the
    user's code that failed to import."""

    def __init__(self, message: str, user_traceback: str | None = None, raised: Exception | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.user_traceback = user_traceback
        #: What the user's module raised, if it raised.
        self.raised = raised


@dataclass(frozen=True)
class LoadedFlow:
    """A flow ready to serve, with the target it came from (for messages)."""

    flow: Flow
    target: str
    module: ModuleType


@dataclass(frozen=True)
class _Target:
    """A parsed target: exactly one of ``module_name`` / ``file`` is set."""

    module_name: str | None
    file: Path | None
    attr: str


def load_flow(
    target: str | None, cwd: Path, *, full_traceback: bool = False, command: str = "bfctl serve"
) -> LoadedFlow:
    """Resolve ``target`` (or the project's configured entry point when it is
    None), import it with ``cwd`` (or the file's directory) first on
    ``sys.path``, and return the ``buildflow.Flow`` it names.

    ``full_traceback`` keeps every frame of an import error, for debugging the
    SDK itself rather than a flow. ``command`` is how the running command takes a
    target (``bfctl db upgrade --flow``): the example a missing one is asked for with.
    """
    from buildflow.dependencies.flow_dependencies import read_only

    spec = (target if target is not None else _configured_target(cwd, command)).strip()
    parsed = _parse_target(spec, cwd)
    read_only()  # module-level engines stay dry, unless `serve` said first which stack it serves
    if parsed.file is not None:
        module = _import_file(parsed.file, full_traceback)
    else:
        assert parsed.module_name is not None
        module = _import_module(parsed.module_name, cwd, full_traceback)
    shown = spec if spec.endswith(f":{parsed.attr}") else f"{spec}:{parsed.attr}"
    return LoadedFlow(_flow_attr(module, parsed.attr, shown), shown, module)


def split_target(spec: str) -> tuple[str, str | None]:
    """A target's module or file, and the attribute it names (None: the default)."""
    if not spec.endswith(".py") and ":" in spec:
        location, attr = spec.rsplit(":", 1)
        return location, attr
    return spec, None


def _parse_target(spec: str, cwd: Path) -> _Target:
    if not spec:
        raise FlowLoadError("the flow target is empty; expected `module:attr` or `path/to/file.py:attr`")
    location, named = split_target(spec)
    if named is not None and not named.isidentifier():
        raise FlowLoadError(f"`{named}` in target `{spec}` is not a Python identifier")
    attr = named or DEFAULT_ATTR
    if location.endswith(".py"):
        return _Target(None, (cwd / location).resolve(), attr)
    if not all(part.isidentifier() for part in location.split(".")):
        raise FlowLoadError(
            f"`{location}` is neither a module name nor a .py file; expected `module:attr` or `path/to/file.py:attr`"
        )
    return _Target(location, None, attr)


def _configured_target(cwd: Path, command: str) -> str:
    """The entry point configured in ``cwd``: ``[tool.buildflow] app`` in
    pyproject.toml, else BuildFlow's ``entry_point`` in buildflow.yaml.
    Only ``cwd`` is searched, so what gets served never depends on where a
    parent project happens to live."""
    pyproject, yaml = cwd / PYPROJECT, cwd / BUILDFLOW_YAML
    found, why_not_pyproject = _from_pyproject(pyproject)
    if found:
        return found
    found, why_not_yaml = _from_buildflow_yaml(yaml)
    if found:
        return found
    raise FlowLoadError(
        "no flow to serve: no TARGET was given and none is configured.\n"
        "Looked for:\n"
        f'  - {pyproject} with [tool.buildflow] app = "module:attr": {why_not_pyproject}\n'
        f"  - {yaml} with entry_point: module:attr: {why_not_yaml}\n"
        f"Pass a target, e.g. `{command} main:app`, or add one of the above."
    )


def _from_pyproject(path: Path) -> tuple[str | None, str]:
    """Return ``(target, "")`` or ``(None, reason it has none)``."""
    if not path.is_file():
        return None, "file not found"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FlowLoadError(f"{path} is not valid TOML: {exc}") from None
    section = data.get("tool", {}).get("buildflow")
    if section is None:
        return None, "no [tool.buildflow] section"
    app = section.get("app") if isinstance(section, dict) else None
    if not isinstance(app, str) or not app.strip():
        return None, "[tool.buildflow] has no `app` string"
    return app.strip(), ""


_ENTRY_POINT_LINE = re.compile(r"^entry_point\s*:\s*(?P<value>.*?)\s*(?:\s#.*)?$")


def _from_buildflow_yaml(path: Path) -> tuple[str | None, str]:
    """Read the top-level ``entry_point`` key of a BuildFlow config.

    Only that one scalar is needed, so a line match replaces a YAML parser
    dependency.
    """
    if not path.is_file():
        return None, "file not found"
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ENTRY_POINT_LINE.match(line)
        if match:
            value = match["value"].strip("'\"").strip()
            return (value, "") if value else (None, "entry_point is empty")
    return None, "no top-level entry_point key"


def _put_first_on_path(directory: Path) -> None:
    """Make the user's directory win over installed packages, as BuildFlow did."""
    entry = str(directory)
    if not sys.path or sys.path[0] != entry:
        sys.path.insert(0, entry)


def _import_module(name: str, cwd: Path, full_traceback: bool) -> ModuleType:
    _put_first_on_path(cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise FlowLoadError(
                f"no module named `{exc.name}` (searched {cwd}, put first on sys.path, then the installed packages)"
            ) from None
        raise _import_failed(name, exc, full_traceback) from None
    except Exception as exc:
        raise _import_failed(name, exc, full_traceback) from None


def _import_file(path: Path, full_traceback: bool) -> ModuleType:
    """Import ``path`` as the top-level module named after its stem, with its
    directory first on ``sys.path`` so sibling imports work as in BuildFlow."""
    if not path.is_file():
        raise FlowLoadError(f"file not found: {path}")
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() == path:
            return existing
        raise FlowLoadError(f"{path.name} would replace the already imported module `{name}`; rename the file")
    _put_first_on_path(path.parent)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _import_failed(str(path), exc, full_traceback) from None
    return module


def _import_failed(what: str, exc: Exception, full_traceback: bool) -> FlowLoadError:
    """Wrap an exception raised by the user's module-level code."""
    tb = traceback.TracebackException.from_exception(exc)
    if not full_traceback:
        # Other installed packages stay visible: the flow itself may live there.
        drop_foreign_frames(tb, installed=False)
    return FlowLoadError(f"importing {what} raised {type(exc).__name__}", "".join(tb.format()), exc)


def _flow_attr(module: ModuleType, attr: str, shown: str) -> Flow:
    """``module.<attr>``, checked to be a Flow; on failure, name the Flow
    objects the module does have, since a wrong attribute is the usual slip."""
    from buildflow import Flow

    flows = [name for name, value in vars(module).items() if isinstance(value, Flow)]
    hint = f"Flow objects in it: {', '.join(flows)}" if flows else ""
    try:
        obj = getattr(module, attr)
    except AttributeError:
        if not hint:
            public = sorted(name for name in vars(module) if not name.startswith("_"))
            hint = f"It has no Flow objects; its public names: {', '.join(public) or '(none)'}"
        message = f"module `{module.__name__}` has no attribute `{attr}`. {hint}"
        raise FlowLoadError(message) from None
    if not isinstance(obj, Flow):
        raise FlowLoadError(f"`{shown}` is a {type(obj).__name__}, not a buildflow.Flow. {hint}".rstrip())
    return obj
