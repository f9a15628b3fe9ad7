"""The dashboard example: one page whose three results come from the dispatcher, served for real
on the notes database (an embedded PostgreSQL made by the local provider)."""

import importlib.util
from pathlib import Path

import pg8000.native

from bfctl.infra import declared_primitives
from bfctl.providers import get_provider
from bfctl.testing import TestClient
from buildflow.dependencies.flow_dependencies import ResourceOutputs

ROOT = Path(__file__).resolve().parent.parent


def test_the_page_gathers_the_count_of_notes_and_the_upstream_results(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("dashboard_main", ROOT / "examples" / "dashboard" / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    provider = get_provider("local", tmp_path, "dev")
    outputs = ResourceOutputs(provider.apply(provider.plan(declared_primitives(module.app, "local"))), "local")
    try:
        with TestClient(module.app, outputs=outputs) as client:
            first = client.get("/dashboard?city=Paris")
            assert first.status_code == 200, first.text
            assert first.json() == {
                "notes": 0,
                "forecast": {"city": "Paris", "sky": "clear"},
                "headlines": ["Pipedream flows into BuildFlow", "Dispatchers now share the request plan"],
            }
            db = outputs["my-project:notes-db.notes"]
            conn = pg8000.native.Connection(
                "notes", host=db["host"], port=db["port"], database=db["database"], password="s3cret"
            )
            try:
                conn.run("insert into note (title) values ('one'), ('two')")
            finally:
                conn.close()
            second = client.get("/dashboard").json()
            assert second["notes"] == 2
            assert second["forecast"] == {"city": "Oslo", "sky": "cloudy"}  # the query's default
    finally:
        provider.destroy()
