"""The Cloud SQL connector's certificate refresh: on Cloud Run, where the CPU is throttled between
requests, it refreshes when a connection needs it, not on a background timer that starves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("google.cloud.sql.connector")

from google.auth.credentials import AnonymousCredentials
from google.cloud.sql.connector.enums import RefreshStrategy

from buildflow.dependencies.flow_dependencies import FlowCredentials
from buildflow.dependencies.sqlalchemy import CloudSQLConnectors


@pytest.mark.parametrize(
    ("service", "strategy"), [("notes-dev", RefreshStrategy.LAZY), (None, RefreshStrategy.BACKGROUND)]
)
def test_on_cloud_run_the_connectors_refresh_lazily(
    service: str | None, strategy: RefreshStrategy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # google-auth never probes the metadata server
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    if service is None:
        monkeypatch.delenv("K_SERVICE", raising=False)
    else:
        monkeypatch.setenv("K_SERVICE", service)
    connectors = CloudSQLConnectors(FlowCredentials(gcp_credentials=AnonymousCredentials()))

    async def made() -> tuple[RefreshStrategy, RefreshStrategy]:
        try:
            return connectors.sync()._refresh_strategy, (await connectors.for_asyncio())._refresh_strategy
        finally:
            await connectors.teardown()

    assert asyncio.run(made()) == (strategy, strategy)
