"""Schemathesis against the OpenAPI document of the request-parsing routes: every case the
schema allows (and mutations of it) gets an answer below 500, in the documented shape."""

from __future__ import annotations

import os

import pytest
import schemathesis
from flows.http_app import make_app
from hypothesis import HealthCheck, settings

from bfctl.runtime.app import FlowApp
from bfctl.runtime.openapi import document
from bfctl.testing import TestClient

FAILING_ON_PURPOSE = {"/boom", "/unserializable"}
APP = make_app()
COMPILED = FlowApp(APP)
SCHEMA = schemathesis.openapi.from_dict(document(COMPILED.api_info, COMPILED.handlers, COMPILED.tags)).exclude(
    path=list(FAILING_ON_PURPOSE)
)


@pytest.fixture(scope="module")
def client():
    with TestClient(APP, max_body=4096) as c:
        yield c


@SCHEMA.parametrize()
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, client):
    response = case.call(base_url=client.base_url)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/json"), (
            case.method,
            case.formatted_path,
            response.status_code,
            dict(response.headers),
            response.text,
        )
