"""The SDK primitives: BuildFlow 0.3 names, ids, validation, and what providers read."""

from __future__ import annotations

import dataclasses

import pytest

from buildflow.io.gcp import CloudSQLDatabase, CloudSQLInstance, CloudSQLUser
from buildflow.io.primitive import Primitive, PrimitiveType, PrimitiveValidationError
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings


def make_instance(**overrides: object) -> CloudSQLInstance:
    values: dict[str, object] = {
        "instance_name": "notes-db",
        "project_id": "my-project",
        "region": "us-central1",
        "database_version": CloudSQLDatabaseVersion.POSTGRES_15,
        "settings": CloudSQLInstanceSettings(tier="db-f1-micro"),
    }
    values.update(overrides)
    return CloudSQLInstance(**values)  # type: ignore[arg-type]  # values holds each argument's own type


def test_buildflow_field_order_and_ids() -> None:
    settings = CloudSQLInstanceSettings(tier="db-f1-micro")
    instance = CloudSQLInstance("notes-db", "my-project", CloudSQLDatabaseVersion.POSTGRES_15, settings, "us-central1")
    database = CloudSQLDatabase("notes", instance)
    user = CloudSQLUser("notes", "s3cret", instance)
    assert [f.name for f in dataclasses.fields(CloudSQLInstance)] == [
        "instance_name",
        "project_id",
        "database_version",
        "settings",
        "region",
    ]
    assert instance.primitive_type is PrimitiveType.GCP
    assert instance.primitive_id() == "my-project:notes-db"
    assert database.primitive_id() == "my-project:notes-db.notes"
    # A user and a database of the same name must not share an id.
    assert user.primitive_id() == "my-project:notes-db/users/notes"
    assert instance.connection_name() == "my-project:us-central1:notes-db"
    assert instance.cloud_console_url() == (
        "https://console.cloud.google.com/sql/instances/notes-db?project=my-project"
    )
    assert database.parents() == [instance] and user.parents() == [instance]


def test_managed_flag_options_and_dependency() -> None:
    instance = make_instance()
    assert instance._managed is False
    instance.enable_managed()
    assert instance._managed is True
    assert instance.options() is instance
    with pytest.raises(TypeError, match="unexpected keyword `tier`"):
        instance.options(tier="db-g1-small")
    provide = instance.dependency()
    from buildflow.dependencies import Scope

    assert provide.__buildflow_scope__ is Scope.NO_SCOPE
    assert provide() is instance and provide() is instance


def test_desired_properties_are_plain_data() -> None:
    settings = CloudSQLInstanceSettings(
        tier="db-custom-1-3840",
        disk_size=20,
        user_labels={"team": "notes"},
        database_flags=[{"name": "max_connections", "value": "50"}],
        backup_configuration={"enabled": True},
    )
    instance = make_instance(settings=settings)
    assert instance.desired_properties() == {
        "instance_name": "notes-db",
        "project_id": "my-project",
        "region": "us-central1",
        "database_version": "POSTGRES_15",
        "settings": {
            "tier": "db-custom-1-3840",
            "backup_configuration": {"enabled": True},
            "database_flags": [{"name": "max_connections", "value": "50"}],
            "disk_size": 20,
            "user_labels": {"team": "notes"},
        },
    }
    assert settings.disk_size == 20 and settings.edition is None
    assert CloudSQLInstance.replace_properties >= {"instance_name", "database_version", "region"}
    assert "settings" not in CloudSQLInstance.replace_properties
    user = CloudSQLUser("notes", "s3cret", instance)
    assert user.desired_properties()["password"] == "s3cret"
    assert CloudSQLUser.secret_properties == frozenset({"password"})


def test_settings_typo_names_the_keyword_and_suggests() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword `disk_autosize`\. Did you mean `disk_autoresize`\?"):
        CloudSQLInstanceSettings(tier="db-f1-micro", disk_autosize=True)
    with pytest.raises(TypeError, match="must be plain data"):
        CloudSQLInstanceSettings(tier="db-f1-micro", ip_configuration=object())
    with pytest.raises(ValueError, match="tier"):
        CloudSQLInstanceSettings(tier="")


def test_settings_may_be_a_mapping() -> None:
    instance = make_instance(settings={"tier": "db-f1-micro", "edition": "ENTERPRISE"})
    assert instance.settings == CloudSQLInstanceSettings(tier="db-f1-micro", edition="ENTERPRISE")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"instance_name": "Notes"}, "lowercase letters, digits and hyphens, starting with a letter"),
        ({"instance_name": "1notes"}, "starting with a letter"),
        ({"instance_name": "notes_db"}, "not a valid Cloud SQL instance name"),
        ({"instance_name": "a" * 90}, "at most 98"),
        ({"project_id": "My-Project"}, "not a valid Google Cloud project id"),
        ({"project_id": "proj"}, "6 to 30"),
        ({"region": "us central"}, "not a Google Cloud region"),
        ({"database_version": "POSTGRES15"}, "Did you mean `POSTGRES_15`"),
        ({"settings": "db-f1-micro"}, "settings must be CloudSQLInstanceSettings"),
    ],
)
def test_instance_validation(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(PrimitiveValidationError, match=message):
        make_instance(**overrides)


@pytest.mark.parametrize(
    ("version", "settings", "message"),
    [
        ("POSTGRES_16", {"tier": "db-f1-micro", "edition": "ENTERPRISE_PLUS"}, "'db-f1-micro' is not offered in"),
        ("POSTGRES_16", {"tier": "db-g1-small", "edition": "ENTERPRISE_PLUS"}, "db-perf-optimized-N-<vCPUs>"),
        ("MYSQL_8_0", {"tier": "db-custom-2-7680", "edition": "ENTERPRISE_PLUS"}, "edition='ENTERPRISE'"),
        ("POSTGRES_15", {"tier": "db-perf-optimized-N-2", "edition": "ENTERPRISE"}, "runs only in the ENTERPRISE_PLUS"),
        ("POSTGRES_11", {"tier": "db-perf-optimized-N-2"}, "POSTGRES_11 does not run in the ENTERPRISE_PLUS"),
        ("MYSQL_5_7", {"tier": "db-perf-optimized-N-2"}, "MYSQL 8.0 or later"),
        ("POSTGRES_16", {"tier": "db-f1-micro", "edition": "STANDARD"}, "not a Cloud SQL edition"),
    ],
)
def test_instance_refuses_editions_cloud_sql_refuses(version: str, settings: dict[str, str], message: str) -> None:
    with pytest.raises(PrimitiveValidationError, match=message):
        make_instance(database_version=version, settings=settings)


def test_instance_accepts_valid_names() -> None:
    make_instance(instance_name="a" * (98 - len("my-project:")))
    make_instance(project_id="example.com:my-project", instance_name="db")
    make_instance(database_version=CloudSQLDatabaseVersion.MYSQL_8_0, region="europe-west4")
    assert "POSTGRES_17" in CloudSQLDatabaseVersion.all()


def test_database_and_user_validation() -> None:
    instance = make_instance()
    with pytest.raises(PrimitiveValidationError, match="longer than 63 bytes"):
        CloudSQLDatabase("n" * 64, instance)
    with pytest.raises(PrimitiveValidationError, match="reserved"):
        CloudSQLDatabase("template1", instance)
    with pytest.raises(PrimitiveValidationError, match="must be a CloudSQLInstance"):
        CloudSQLDatabase("notes", "my-project:notes-db")  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(PrimitiveValidationError, match="reserved"):
        CloudSQLUser("pg_notes", "x", instance)
    with pytest.raises(PrimitiveValidationError, match="password must be a non-empty string"):
        CloudSQLUser("notes", "", instance)
    with pytest.raises(PrimitiveValidationError, match="control characters"):
        CloudSQLDatabase("notes\n", instance)


def test_validation_runs_again_at_plan_time() -> None:
    database = CloudSQLDatabase("notes", make_instance())
    database.database_name = "template0"
    with pytest.raises(PrimitiveValidationError):
        database.validate()


def test_password_never_in_repr() -> None:
    user = CloudSQLUser("notes", "s3cret-value", make_instance())
    assert "s3cret-value" not in repr(user)
    assert "s3cret-value" not in str(user)


def test_base_primitive_is_abstract_data() -> None:
    class Thing(Primitive):
        pass

    with pytest.raises(NotImplementedError):
        Thing().primitive_id()
    assert Thing().cloud_console_url() is None and Thing().parents() == []
    assert issubclass(PrimitiveValidationError, ValueError)
