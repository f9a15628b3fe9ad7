"""Target resolution and import errors of ``bfctl.loader``, plus the CLI's
promise that ``--help`` and ``--version`` import nothing heavy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import buildflow
from bfctl.loader import FlowLoadError, load_flow

FLOW_SOURCE = """
from buildflow import Flow

app = Flow()
other = Flow()
"""


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path: Path):
    """Undo what loading a flow does to the interpreter (sys.path entries and
    modules imported from tmp_path) so tests cannot see each other's flows."""
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("target", "attr"),
    [
        ("flowmod_a:other", "other"),
        ("flowmod_a", "app"),
        ("sub/flowfile_a.py:other", "other"),
        ("sub/flowfile_a.py", "app"),
    ],
)
def test_target_forms(tmp_path: Path, target: str, attr: str) -> None:
    module_source = FLOW_SOURCE
    write(tmp_path / "flowmod_a.py", module_source)
    write(tmp_path / "sub" / "flowfile_a.py", module_source)

    loaded = load_flow(target, tmp_path)

    assert isinstance(loaded.flow, buildflow.Flow)
    assert loaded.flow is getattr(loaded.module, attr)
    assert loaded.target.endswith(f":{attr}")
    expected_dir = tmp_path / "sub" if target.startswith("sub/") else tmp_path
    assert sys.path[0] == str(expected_dir)


def test_file_target_can_import_its_siblings(tmp_path: Path) -> None:
    write(tmp_path / "pkgdir" / "helper_b.py", "GREETING = 'hi'\n")
    write(tmp_path / "pkgdir" / "flowfile_b.py", "import helper_b\n" + FLOW_SOURCE)

    loaded = load_flow("pkgdir/flowfile_b.py", tmp_path)

    assert loaded.module.helper_b.GREETING == "hi"


def test_pyproject_tool_buildflow_app(tmp_path: Path) -> None:
    write(tmp_path / "flowmod_c.py", FLOW_SOURCE)
    write(tmp_path / "pyproject.toml", '[tool.buildflow]\napp = "flowmod_c:other"\n')
    write(tmp_path / "buildflow.yaml", "entry_point: flowmod_c:app\n")

    loaded = load_flow(None, tmp_path)

    assert loaded.target == "flowmod_c:other"
    assert loaded.flow is loaded.module.other


def test_buildflow_yaml_entry_point(tmp_path: Path) -> None:
    write(tmp_path / "flowmod_d.py", FLOW_SOURCE)
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    write(
        tmp_path / "buildflow.yaml",
        """\
        project: demo
        pulumi_config:
          entry_point: nested:ignored
        entry_point: "flowmod_d:other"  # the flow
        """,
    )

    loaded = load_flow(None, tmp_path)

    assert loaded.target == "flowmod_d:other"


def test_no_target_and_no_config_says_what_was_looked_for(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')

    with pytest.raises(FlowLoadError) as info:
        load_flow(None, tmp_path)

    message = str(info.value)
    assert f"{tmp_path / 'pyproject.toml'} with [tool.buildflow] app" in message
    assert "no [tool.buildflow] section" in message
    assert f"{tmp_path / 'buildflow.yaml'} with entry_point" in message
    assert "file not found" in message


def test_invalid_pyproject_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.buildflow\n")

    with pytest.raises(FlowLoadError, match=r"pyproject\.toml is not valid TOML"):
        load_flow(None, tmp_path)


def test_module_not_found_names_module_and_path(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError) as info:
        load_flow("no_such_flow_module:app", tmp_path)

    assert "no module named `no_such_flow_module`" in str(info.value)
    assert str(tmp_path) in str(info.value)
    assert info.value.user_traceback is None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match=r"file not found: .*missing\.py"):
        load_flow("missing.py", tmp_path)


@pytest.mark.parametrize("target", ["a/b:app", "main:", "main:not-an-id", "  "])
def test_malformed_targets(tmp_path: Path, target: str) -> None:
    with pytest.raises(FlowLoadError):
        load_flow(target, tmp_path)


def test_import_error_keeps_only_user_frames(tmp_path: Path) -> None:
    write(tmp_path / "helper_e.py", "def setup():\n    import json\n    json.loads('{oops')\n")
    write(tmp_path / "flowmod_e.py", "import helper_e\nhelper_e.setup()\n")

    with pytest.raises(FlowLoadError) as info:
        load_flow("flowmod_e:app", tmp_path)

    assert "importing flowmod_e raised JSONDecodeError" in str(info.value)
    shown = info.value.user_traceback
    assert shown is not None
    assert 'flowmod_e.py", line 2' in shown
    assert 'helper_e.py", line 3' in shown
    assert "JSONDecodeError: Expecting property name" in shown
    for noise in ("importlib", "bfctl/loader.py", "json/decoder.py"):
        assert noise not in shown


def test_full_traceback_keeps_every_frame(tmp_path: Path) -> None:
    write(tmp_path / "flowmod_f.py", "raise RuntimeError('boom')\n")

    with pytest.raises(FlowLoadError) as info:
        load_flow("flowmod_f", tmp_path, full_traceback=True)

    assert "bfctl/loader.py" in (info.value.user_traceback or "")


def test_syntax_error_shows_file_line_and_caret(tmp_path: Path) -> None:
    write(tmp_path / "flowfile_g.py", "app = (\n")

    with pytest.raises(FlowLoadError) as info:
        load_flow("flowfile_g.py", tmp_path)

    shown = info.value.user_traceback or ""
    assert 'flowfile_g.py", line 1' in shown
    assert "^" in shown
    assert "SyntaxError" in shown
    assert "importlib" not in shown
    assert "flowfile_g" not in sys.modules


def test_missing_attribute_lists_flows(tmp_path: Path) -> None:
    write(tmp_path / "flowmod_h.py", FLOW_SOURCE)

    with pytest.raises(FlowLoadError) as info:
        load_flow("flowmod_h:nope", tmp_path)

    assert str(info.value) == ("module `flowmod_h` has no attribute `nope`. Flow objects in it: app, other")


def test_missing_attribute_without_flows_lists_public_names(tmp_path: Path) -> None:
    write(tmp_path / "flowmod_i.py", "alpha = 1\n_hidden = 2\ndef beta(): pass\n")

    with pytest.raises(FlowLoadError) as info:
        load_flow("flowmod_i", tmp_path)

    assert "has no attribute `app`" in str(info.value)
    assert "public names: alpha, beta" in str(info.value)


def test_attribute_that_is_not_a_flow(tmp_path: Path) -> None:
    write(tmp_path / "flowmod_j.py", FLOW_SOURCE + "def handler(): pass\n")

    with pytest.raises(FlowLoadError) as info:
        load_flow("flowmod_j:handler", tmp_path)

    assert str(info.value).startswith("`flowmod_j:handler` is a function, not a buildflow.Flow")
    assert "Flow objects in it: app, other" in str(info.value)


def test_file_named_like_an_imported_module_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "json.py", FLOW_SOURCE)

    with pytest.raises(FlowLoadError, match="already imported module `json`"):
        load_flow("json.py", tmp_path)


HEAVY = ("aiohttp", "runtime", "buildflow", "sqlalchemy", "pulumi", "bfctl.loader")
# What Typer's Rich help and its parameter coercion would bring in: help is drawn by Click's
# formatter (bfctl.help), and output is plain in a pipe, so none of it is needed.
HELP_HEAVY = (*HEAVY, "rich", "typer.rich_utils", "markdown_it", "pydantic")


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["apply", "-h"]])
def test_import_and_help_import_nothing_heavy(bfctl_env: dict[str, str], argv: list[str]) -> None:
    probe = textwrap.dedent(
        f"""
        import sys
        import bfctl.cli
        after_import = [m for m in {HEAVY!r} if m in sys.modules]
        sys.argv = ["bfctl", *{argv!r}]
        try:
            bfctl.cli.main()
        except SystemExit as exit:
            code = exit.code
        after_help = [m for m in {HELP_HEAVY!r} if m in sys.modules]
        print("RESULT", after_import, after_help, code)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=bfctl_env, check=False, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert "RESULT [] [] 0" in result.stdout


def test_help_lists_commands_and_options(bfctl_env: dict[str, str]) -> None:
    top = subprocess.run(
        [sys.executable, "-m", "bfctl", "--help"],
        capture_output=True,
        text=True,
        env={**bfctl_env, "COLUMNS": "200"},
        check=False,
        timeout=60,
    )
    serve = subprocess.run(
        [sys.executable, "-m", "bfctl", "serve", "--help"],
        capture_output=True,
        text=True,
        env={**bfctl_env, "COLUMNS": "200"},
        check=False,
        timeout=60,
    )

    assert top.returncode == 0, top.stderr
    assert "serve" in top.stdout and "--version" in top.stdout
    for command in ("plan", "apply", "destroy"):
        assert command in top.stdout.split()
    assert serve.returncode == 0, serve.stderr
    for option in ("--host", "--port", "--workers", "--grace", "--access-log", "--no-access-log", "--log-format"):
        assert option in serve.stdout
    words = " ".join(serve.stdout.split())  # the page wraps at 100 columns
    assert '`[tool.buildflow] app = "module:attr"`' in words  # no markup escape left in it
    assert "(else `[tool.buildflow.gcp]` or the primitives')" in words
    assert "[default: (0.0.0.0 when K_SERVICE is set (Cloud Run), else 127.0.0.1)]" in words
    assert "[default: ($PORT when set, else 8000); 0<=x<=65535]" in words
    assert "[default: (json when K_SERVICE is set (Cloud Run), else text)]" in words
    # each command's first sentence whole in the list, never cut to "..."
    commands = " ".join(top.stdout.split("Commands:")[1].split())
    assert "(secrets shown as (secret))." in commands and "..." not in commands
    for text in (top.stdout, serve.stdout):
        assert "\x1b[" not in text  # no colour in a pipe


def test_version(bfctl_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bfctl", "--version"],
        capture_output=True,
        text=True,
        env=bfctl_env,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bfctl ")
    assert result.stdout.split()[1][0].isdigit()
