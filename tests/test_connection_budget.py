"""The connection budget: instances x workers x (pools + writers) within each Cloud SQL instance's
``max_connections``, the pools sized to fit (or max instances lowered), what the plan says, and
the sizes reaching every worker's engine."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flows.notes_service import deploy

from bfctl.providers.connection_budget import (
    RESERVED,
    ConnectionBudgetError,
    connection_budget,
    max_connections,
)
from bfctl.providers.gcp.deploy import check_instances
from bfctl.providers.gcp.errors import GCPSettingsError
from buildflow import Flow
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.dependencies.sqlalchemy import EnginePool, SessionDep, engine, engine_pools
from buildflow.deployed import POOLS_ENV
from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLTable
from buildflow.types.gcp import CloudSQLInstanceSettings


def instance(tier: str = "db-f1-micro", max_connections_flag: Any = None) -> CloudSQLInstance:
    flags = None if max_connections_flag is None else [{"name": "max_connections", "value": max_connections_flag}]
    return CloudSQLInstance(
        "notes-db",
        "my-project",
        "POSTGRES_15",
        CloudSQLInstanceSettings(tier=tier, database_flags=flags),
        "us-central1",
    )


def database(tier: str = "db-f1-micro", max_connections_flag: Any = None) -> CloudSQLDatabase:
    return CloudSQLDatabase(database_name="notes", instance=instance(tier, max_connections_flag))


@pytest.mark.parametrize(
    ("tier", "limit"),
    [
        ("db-f1-micro", 25),
        ("db-g1-small", 50),
        ("db-custom-1-3840", 100),
        ("db-custom-2-7168", 200),
        ("db-custom-2-7680", 400),
        ("db-n1-standard-4", 500),
        ("db-n1-highmem-8", 600),
        ("db-custom-16-65536", 800),
        ("db-custom-32-131072", 1000),
        ("db-perf-optimized-N-2", 500),
    ],
)
def test_max_connections_is_cloud_sqls_default_for_the_tiers_memory(tier: str, limit: int) -> None:
    found, source = max_connections(instance(tier))
    assert found == limit
    assert f"Cloud SQL's default for {tier}" in source


def test_the_max_connections_flag_wins_and_must_be_one_cloud_sql_takes() -> None:
    assert max_connections(instance(max_connections_flag="60")) == (60, "its max_connections flag")
    for wrong in ("9", "lots", "300000"):
        with pytest.raises(ConnectionBudgetError, match="max_connections flag must be a whole number from 14"):
            max_connections(instance(max_connections_flag=wrong))
    limit, source = max_connections(instance("db-something-new"))
    assert limit == 25 and "does not know" in source and "max_connections flag" in source


def test_pools_get_what_fits_up_to_sqlalchemys_own() -> None:
    db = database("db-custom-1-3840")  # 100 connections, 94 beside the reserved ones
    roomy = connection_budget([EnginePool(db)], max_instances=2, min_instances=0, workers=1)
    assert (roomy.max_instances, dict(roomy.pools), roomy.notes) == (2, {db.primitive_id(): (5, 10)}, ())

    tight = connection_budget([EnginePool(db)], max_instances=10, min_instances=0, workers=2)
    assert tight.max_instances == 10
    assert dict(tight.pools) == {db.primitive_id(): (4, 0)}  # 94 // 20 workers
    (note,) = tight.notes
    assert "keeps 4 connection(s) and opens at most 0 more (SQLAlchemy's default: 5 and 10)" in note
    assert "10 instance(s) x 2 worker(s) fit in the 100 connections it allows" in note
    assert "503 with Retry-After" in note
    assert 100 - RESERVED >= 10 * 2 * 4

    split = connection_budget([EnginePool(db), EnginePool(db)], max_instances=3, min_instances=0, workers=1)
    assert dict(split.pools) == {db.primitive_id(): (5, 10)}  # 31 each would do: at most 15
    halves = connection_budget([EnginePool(db), EnginePool(db)], max_instances=5, min_instances=0, workers=1)
    assert dict(halves.pools) == {db.primitive_id(): (5, 4)}  # 94 // 5 = 18 per worker, 9 per pool


def test_when_one_connection_per_pool_does_not_fit_max_instances_is_lowered() -> None:
    db = database()  # db-f1-micro: 25
    budget = connection_budget([EnginePool(db)], max_instances=100, min_instances=0, workers=1)
    assert budget.max_instances == 25 - RESERVED
    assert dict(budget.pools) == {db.primitive_id(): (1, 0)}
    capped = budget.notes[0]
    assert capped.startswith("the service scales to at most 19 instances, not 100: the Cloud SQL instance notes-db")
    assert "allows 25 connections (Cloud SQL's default for db-f1-micro, 0.6 GiB)" in capped
    assert "Raise the max_connections flag or the tier" in capped


def test_pools_the_flow_sized_and_sink_writers_count_in_full() -> None:
    db = database(max_connections_flag="70")  # 64 beside the reserved ones
    table = CloudSQLTable(database=db, table_name="events")
    pools = [EnginePool(db, pool_size=2, max_overflow=1), EnginePool(db)]
    budget = connection_budget(pools, [table], max_instances=4, min_instances=0, workers=2)
    # 64 // 8 workers = 8 each: 3 for the flow's pool, 4 for the writer, 1 left for the sized one
    assert (budget.max_instances, dict(budget.pools)) == (4, {db.primitive_id(): (1, 0)})
    lowered = connection_budget(pools, [table], max_instances=10, min_instances=0, workers=2)
    assert lowered.max_instances == 64 // (2 * 8)
    assert "3 in pools the flow sized, 4 for sink writers" in lowered.notes[0]


def test_a_flow_that_cannot_fit_even_one_instance_is_refused_with_what_to_change() -> None:
    db = database()
    with pytest.raises(ConnectionBudgetError) as refused:
        connection_budget([EnginePool(db, pool_size=5)], max_instances=3, min_instances=2, workers=1)
    message = str(refused.value)
    assert "allows 25 connections" in message and "2 instance(s) of 1 worker(s) need at least 30" in message
    assert "max_connections flag" in message and "fewer workers" in message and "min_replicas" in message


def notes_flow(db_primitive: CloudSQLDatabase, **service_options: Any) -> Flow:
    app = Flow()
    app.manage(db_primitive.instance, db_primitive)
    session = SessionDep(db_primitive=db_primitive, db_user="notes", db_password="pw")
    service = app.service(**service_options)

    @service.endpoint("/notes")
    def notes(db: session) -> list[str]:
        return []

    return app


def test_the_deployment_passes_the_pools_to_every_worker_and_the_plan_says_why() -> None:
    db = database()
    flow = notes_flow(db, min_replicas=0)
    settings = deploy(flow, [db.instance, db]).settings

    assert settings.max_instances == 19
    assert json.loads(settings.env[POOLS_ENV]) == {db.primitive_id(): [1, 0]}
    notes = check_instances(settings)
    assert any(n.startswith("the service scales to at most 19 instances, not 100") for n in notes)
    assert any("keeps 1 connection(s)" in n for n in notes)
    assert not any("Cloud Run's default" in n for n in notes)  # no longer what decided it

    roomy = database("db-custom-2-7680")  # 400: a pool of 3 + 0 in each of 100 instances
    settings = deploy(notes_flow(roomy, min_replicas=0), [roomy.instance, roomy], workers=1).settings
    assert (settings.max_instances, json.loads(settings.env[POOLS_ENV])) == (100, {roomy.primitive_id(): [3, 0]})


def test_a_deployment_that_cannot_fit_is_refused_before_pulumi_runs() -> None:
    db = database()
    flow = notes_flow(db, min_replicas=3, num_replicas=3)
    with pytest.raises(GCPSettingsError, match="need at least"):
        deploy(flow, [db.instance, db], workers=8)


def test_each_session_dependency_and_import_time_engine_is_a_pool_of_its_database() -> None:
    db = database()
    SessionDep(db_primitive=db, db_user="a", db_password="pw")
    SessionDep(db_primitive=db, db_user="b", db_password="pw", pool_size=2, max_overflow=0)
    engine(db, "c", "pw")
    engine(db, "c", "pw")  # the same module's engine again: one pool per worker still
    assert [(p.pool_size, p.max_overflow) for p in engine_pools(db)] == [(None, None), (2, 0), (None, None)]


def test_engines_take_the_budgeted_sizes_and_a_short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    db = database()
    outputs = ResourceOutputs({db.primitive_id(): {"host": "127.0.0.1", "port": 5432, "database": "notes"}}, "local")
    monkeypatch.setenv(POOLS_ENV, json.dumps({db.primitive_id(): [2, 1]}))

    budgeted = engine(outputs, db, "notes", "pw")  # nothing connects until first use
    assert (budgeted.pool.size(), budgeted.pool._max_overflow, budgeted.pool._timeout) == (2, 1, 5.0)
    chosen = engine(outputs, db, "notes", "pw", pool_size=7, pool_timeout=1)
    assert (chosen.pool.size(), chosen.pool._max_overflow, chosen.pool._timeout) == (7, 10, 1)

    monkeypatch.setenv(POOLS_ENV, "[1, 0]")
    with pytest.raises(ValueError, match=POOLS_ENV):
        engine(outputs, db, "notes", "pw")
