"""The clickstream example: page views collected into the local analysis table, counted back."""

import importlib.util
from pathlib import Path

from bfctl.infra import declared_primitives
from bfctl.providers import get_provider
from bfctl.testing import TestClient
from buildflow.dependencies.flow_dependencies import ResourceOutputs

ROOT = Path(__file__).resolve().parent.parent


def test_views_are_counted_by_page(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("clickstream_main", ROOT / "examples" / "clickstream" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    provider = get_provider("local", tmp_path, "dev")
    plan = provider.plan(declared_primitives(module.app, "local"))
    assert [(c.resource_id, c.action) for c in plan.changes] == [("analysis_table:page_views", "create")]
    outputs = ResourceOutputs(provider.apply(plan), "local")
    try:
        with TestClient(module.app, outputs=outputs) as client:
            assert client.get("/counts").json() == {}
            for page in ["/home", "/pricing", "/home"]:
                assert client.post("/views", json={"page": page, "user": "ann"}).json() == {"success": True}
            assert client.post("/views", json={"user": "no page"}).status_code == 422
            assert client.get("/counts").json() == {"/home": 2, "/pricing": 1}
            assert client.get("/counts", params={"limit": 1}).json() == {"/home": 2}
    finally:
        provider.destroy()
