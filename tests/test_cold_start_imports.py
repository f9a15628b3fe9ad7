"""What a ``bfctl serve`` worker of the smallest flow has imported once it answers: a new Cloud
Run instance answers nothing until its imports are done, so a package the flow does not use
must not be among them.

The flow is tests/flows/hello.py plus one endpoint answering the worker's ``sys.modules``,
read after the worker has served (no timing is asserted).
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from support import HELLO_FLOW, make_project, serving

MODULES_ENDPOINT = """

import sys


@service.endpoint("/modules", method="GET")
def modules() -> list[str]:
    return sorted(sys.modules)
"""

#: Packages no flow needs unless it uses them: tables, warehouses, infrastructure, reloading,
#: metrics, the /docs page, and what only applying, locking or a database server needs.
UNUSED = (
    "sqlalchemy",
    "duckdb",
    "pulumi",
    "watchfiles",
    "prometheus_client",
    "swagger_ui",
    "scramp",
    "asn1crypto",
    "psutil",
    "pg8000",
    "multiprocessing",
)


def _imported(served: str) -> set[str]:
    return {name.partition(".")[0] for name in json.loads(served)}


def _hello_project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "hello", {"main.py": HELLO_FLOW + MODULES_ENDPOINT})


def _image_entrypoint(target: str) -> list[str]:
    """The generated Dockerfile's ENTRYPOINT, with this interpreter as the image's ``python``."""
    from bfctl.providers.gcp.image import dockerfile

    line = next(x for x in dockerfile(target).splitlines() if x.startswith("ENTRYPOINT "))
    entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))
    assert entrypoint[0] == "python"
    return [sys.executable, *entrypoint[1:]]


#: The CLI's parsing: Typer, its Click, and pydantic, with which Typer validates each option.
CLI = ("typer", "click", "pydantic", "pydantic_core", "rich")


def test_deployed_worker_imports_nothing_the_flow_does_not_use(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """The image's entrypoint as Cloud Run runs it, with the environment the gcp target sets:
    it serves as ``bfctl serve`` does, without the CLI."""
    env = {
        **bfctl_env,
        "PORT": "0",
        "K_SERVICE": "hello",
        "GOOGLE_CLOUD_PROJECT": "cold-start",
        "BUILDFLOW_OUTPUTS": json.dumps({"target": "gcp", "outputs": {}}),
        "BFCTL_WORKERS": "1",
    }
    with serving([], _hello_project(tmp_path), env, command=_image_entrypoint("main.py:app")) as server:
        hello = server.get("/hello")
        status, served = server.get("/modules")
        assert server.stop() == 0, server.output

    assert hello == (200, '"hello"')
    assert status == 200
    imported = _imported(served)
    assert "aiohttp" in imported  # the list is the serving worker's
    assert sorted(imported.intersection(UNUSED + CLI)) == []
    assert [name for name in json.loads(served) if name.startswith("bfctl.providers")] == []  # nothing to apply


def test_the_sdk_reads_its_version_when_asked(tmp_path: Path) -> None:
    """``import buildflow`` (every flow's first line) leaves importlib.metadata and the scan of
    the installed distributions to the first read of ``buildflow.__version__``."""
    code = "import sys, buildflow; print('importlib.metadata' in sys.modules, buildflow.__version__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    imported, version = done.stdout.split()
    assert imported == "False"
    assert version == importlib.metadata.version("bfctl")


def test_a_local_worker_of_a_flow_without_resources_imports_no_database_driver(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    """``bfctl serve`` on the local target: the stack is looked at (its secrets folder), but a
    flow that declares no database loads no PostgreSQL client, SCRAM or process tools; and a
    command line read plainly (``bfctl.flags``) serves without the CLI's Typer and pydantic."""
    with serving(["main.py:app", "--port", "0", "--workers", "1"], _hello_project(tmp_path), bfctl_env) as server:
        status, served = server.get("/modules")
        assert server.stop() == 0, server.output

    assert status == 200
    assert sorted(_imported(served).intersection(UNUSED + CLI)) == []


def test_prometheus_client_is_imported_at_the_first_scrape(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    env = {**bfctl_env, "BFCTL_METRICS": "on"}
    with serving(["main.py:app", "--port", "0", "--workers", "1"], _hello_project(tmp_path), env) as server:
        before = _imported(server.get("/modules")[1])
        scraped = server.get("/_bf/metrics")
        after = _imported(server.get("/modules")[1])
        assert server.stop() == 0, server.output

    assert scraped[0] == 200 and "buildflow_requests_total" in scraped[1]
    for unused in ("sqlalchemy", "duckdb", "pulumi", "watchfiles", "swagger_ui", "prometheus_client"):
        assert unused not in before
    assert "prometheus_client" in after
