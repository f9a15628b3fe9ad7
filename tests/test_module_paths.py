"""Every public module path of BuildFlow 0.3.2 imports with the names it exported, and the
primitives bfctl does not support (AWS, Snowflake, ClickHouse) construct as in BuildFlow but
are refused, naming themselves, when a flow uses them."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from fakes import pulumi_path
from support import bfctl_run, write

import buildflow
from bfctl.providers.errors import UnsupportedPrimitiveError
from bfctl.providers.local import LocalProvider
from bfctl.runtime.app import FlowApp
from bfctl.runtime.errors import StartupError
from buildflow.dependencies.bucket import BucketDependencyBuilder
from buildflow.io.aws import S3Bucket, S3FileChangeStream, SQSQueue
from buildflow.io.clickhouse import ClickhouseTable
from buildflow.io.primitive import Primitive
from buildflow.io.snowflake import SnowflakeTable
from buildflow.types.aws import S3ChangeStreamEventType
from buildflow.types.portable import FileFormat, PortableFileChangeEventType

EXPORTS = {
    "buildflow": ["Flow", "FlowOptions", "consumer", "collector", "endpoint", "Service"],
    "buildflow.config": [],
    "buildflow.exceptions": ["HTTPException", "InvalidDependencyHierarchyOrder"],
    "buildflow.middleware": [],
    "buildflow.requests": ["Request"],
    "buildflow.responses": ["JSONResponse"],
    "buildflow.dependencies": ["dependency", "Scope"],
    "buildflow.dependencies.base": [
        "Scope",
        "dependency",
        "Dependency",
        "ProcessScoped",
        "ReplicaScoped",
        "GlobalScoped",
        "NoScoped",
    ],
    "buildflow.dependencies.bucket": ["BucketDependencyBuilder"],
    "buildflow.dependencies.sink": ["SinkDependencyBuilder"],
    "buildflow.dependencies.flow_dependencies": ["FlowCredentials"],
    "buildflow.dependencies.auth": [],
    "buildflow.dependencies.headers": [],
    "buildflow.dependencies.sqlalchemy": ["SessionDepBuilder"],
    "buildflow.io.gcp": [
        "BigQueryDataset",
        "BigQueryTable",
        "CloudSQLDatabase",
        "CloudSQLInstance",
        "CloudSQLUser",
        "GCSFileChangeStream",
        "GCPPubSubSubscription",
        "GCPPubSubTopic",
        "GCSBucket",
    ],
    "buildflow.io.gcp.bigquery_dataset": ["BigQueryDataset"],
    "buildflow.io.gcp.bigquery_table": ["BigQueryTable"],
    "buildflow.io.gcp.cloud_sql_database": ["CloudSQLDatabase"],
    "buildflow.io.gcp.cloud_sql_instance": ["CloudSQLInstance"],
    "buildflow.io.gcp.cloud_sql_user": ["CloudSQLUser"],
    "buildflow.io.gcp.gcs_file_change_stream": ["GCSFileChangeStream"],
    "buildflow.io.gcp.pubsub_subscription": ["GCPPubSubSubscription"],
    "buildflow.io.gcp.pubsub_topic": ["GCPPubSubTopic"],
    "buildflow.io.gcp.storage": ["GCSBucket"],
    "buildflow.io.gcp.gcs_bucket": ["GCSBucket"],
    "buildflow.io.aws": ["S3Bucket", "S3FileChangeStream", "SQSQueue"],
    "buildflow.io.aws.s3": ["S3Bucket"],
    "buildflow.io.aws.sqs": ["SQSQueue"],
    "buildflow.io.aws.s3_file_change_stream": ["S3FileChangeStream"],
    "buildflow.io.local": ["File", "LocalFileChangeStream", "Pulse", "Empty"],
    "buildflow.io.local.file": ["File"],
    "buildflow.io.local.empty": ["Empty"],
    "buildflow.io.local.file_change_stream": ["LocalFileChangeStream"],
    "buildflow.io.local.pulse": ["Pulse"],
    "buildflow.io.portable": ["Bucket", "Queue", "AnalysisTable", "Topic"],
    "buildflow.io.portable.bucket": ["Bucket"],
    "buildflow.io.portable.queue": ["Queue"],
    "buildflow.io.portable.topic": ["Topic"],
    "buildflow.io.portable.table": ["AnalysisTable"],
    "buildflow.io.portable.file_change_stream": ["FileChangeStream"],
    "buildflow.io.duckdb": ["DuckDBTable"],
    "buildflow.io.duckdb.duckdb": ["DuckDBTable"],
    "buildflow.io.clickhouse": ["ClickhouseTable"],
    "buildflow.io.snowflake": ["SnowflakeTable", "read_private_key_file", "read_private_key_file_bytes"],
    "buildflow.io.primitive": [
        "Primitive",
        "PrimitiveType",
        "PortablePrimtive",
        "GCPPrimtive",
        "AWSPrimtive",
        "AzurePrimtive",
        "LocalPrimtive",
    ],
    "buildflow.types.portable": ["FileFormat", "FileChangeEvent", "PortableFileChangeEventType"],
    "buildflow.types.gcp": ["PubsubMessage", "GCSChangeStreamEventType", "GCSFileChangeEvent"],
    "buildflow.types.local": ["FileChangeStreamEventType", "LocalFileChangeEvent"],
    "buildflow.types.aws": ["S3ChangeStreamEventType", "S3FileChangeEvent"],
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_module_imports_with_its_names(module: str) -> None:
    imported = importlib.import_module(module)
    assert [name for name in EXPORTS[module] if not hasattr(imported, name)] == []


def test_buildflow_misspelt_bases_are_ours() -> None:
    from buildflow.io import primitive

    assert primitive.PortablePrimtive is primitive.PortablePrimitive
    assert primitive.GCPPrimtive is primitive.GCPPrimitive
    assert primitive.LocalPrimtive is primitive.LocalPrimitive
    assert primitive.AWSPrimtive.primitive_type is primitive.PrimitiveType.AWS
    assert primitive.AzurePrimtive.primitive_type is primitive.PrimitiveType.AZURE


def test_dependency_scope_classes_mark_with_their_scope() -> None:
    from buildflow.dependencies.base import GlobalScoped, NoScoped, ProcessScoped, ReplicaScoped
    from buildflow.dependencies.scopes import Scope, scope_of

    marks = {
        wrap: type(f"Dep{wrap.__name__}", (), {}) for wrap in (ProcessScoped, ReplicaScoped, GlobalScoped, NoScoped)
    }
    assert [scope_of(wrap(cls)) for wrap, cls in marks.items()] == [
        Scope.PROCESS,
        Scope.REPLICA,
        Scope.GLOBAL,
        Scope.NO_SCOPE,
    ]


def out_of_scope() -> list[Primitive]:
    bucket = S3Bucket("my-bucket", "rows.csv", FileFormat.CSV, aws_region="us-east-1")
    bucket.options(force_destroy=True)
    return [
        bucket,
        SQSQueue("my-queue", aws_account_id="123456789012", aws_region="us-east-1"),
        S3FileChangeStream(bucket, [S3ChangeStreamEventType.OBJECT_CREATED_ALL]),
        ClickhouseTable("db", "events", "localhost", "user", "pw"),
        SnowflakeTable("t", "db", "public", bucket, "acct", "user", "key").options(flush_time_limit_secs=5),
    ]


@pytest.mark.parametrize("primitive", out_of_scope(), ids=lambda p: type(p).__name__)
def test_out_of_scope_primitives_are_refused_by_plan(primitive: Primitive, tmp_path: Path) -> None:
    name = type(primitive).__name__
    with pytest.raises(UnsupportedPrimitiveError, match=rf"^{name} '.+' is not supported by bfctl"):
        LocalProvider(tmp_path).plan([primitive])


def test_s3_file_change_event_types_map_to_portable_ones() -> None:
    assert S3ChangeStreamEventType.OBJECT_CREATED_PUT.to_portable_type() is PortableFileChangeEventType.CREATED
    assert S3ChangeStreamEventType.OBJECT_REMOVED_ALL.to_portable_type() is PortableFileChangeEventType.DELETED


S3_SINK_FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.aws import S3Bucket
from buildflow.types.portable import FileFormat

app = Flow()


@dataclasses.dataclass
class Row:
    n: int


@app.collector("/rows", method="POST", sink=S3Bucket("my-bucket", "rows.csv", FileFormat.CSV))
def rows(row: Row) -> Row:
    return row
"""
S3_REFUSAL = "Error: S3Bucket 's3://my-bucket' is not supported by bfctl (AWS primitives are out of its scope)"


@pytest.mark.parametrize("target", ["local", "gcp"])
def test_plan_of_a_flow_writing_to_s3_says_it_is_not_supported(
    target: str, tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", S3_SINK_FLOW)
    env = {**bfctl_env, "PATH": pulumi_path(tmp_path / "bin"), "PULUMI_CONFIG_PASSPHRASE": "unused"}
    args = ["plan", "main:app", "--target", target]
    if target == "gcp":
        args += ["--gcp-project", "my-project", "--gcp-region", "us-central1"]
    result = bfctl_run(args, tmp_path, env)
    assert result.returncode == 1
    assert result.stderr.startswith(S3_REFUSAL), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_of_a_flow_writing_to_s3_says_it_is_not_supported(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", S3_SINK_FLOW)
    result = bfctl_run(["serve", "main:app", "--port", "0"], tmp_path, bfctl_env)
    assert result.returncode == 1
    assert S3_REFUSAL in result.stderr and "Traceback" not in result.stderr


S3Files = BucketDependencyBuilder(S3Bucket("my-bucket"), aws_region="us-east-1")


def test_the_runtime_refuses_a_dependency_on_an_s3_bucket() -> None:
    flow = buildflow.Flow()
    service = flow.service()

    @service.endpoint("/files", method="GET")
    def list_files(dep: S3Files) -> list[str]:  # type: ignore[valid-type]  # a built dependency class
        return []

    with pytest.raises(StartupError, match=r"^S3Bucket 's3://my-bucket' is not supported by bfctl"):
        FlowApp(flow)
