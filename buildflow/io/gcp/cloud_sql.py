"""Cloud SQL primitives: an instance, a database in it, a user of it."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar

from buildflow.io.primitive import GCPPrimitive, Primitive, PrimitiveValidationError, closest_name_hint
from buildflow.secrets import Password, Secret
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

# Cloud SQL: "lowercase letters, numbers, and hyphens; must start with a letter", and
# "project-ID:instance-ID" at most 98 characters.
_INSTANCE_NAME = re.compile(r"[a-z][a-z0-9-]*")
_MAX_CONNECTION_ID = 98
# Google Cloud project ids: 6-30 characters, lowercase letters, digits, hyphens, start with a
# letter, no trailing hyphen; legacy domain-scoped ids look like "example.com:my-project".
_PROJECT_ID = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_DATABASE_VERSION = re.compile(r"POSTGRES_\d+(?:_\d+)?|MYSQL_\d+(?:_\d+)*|SQLSERVER_\d{4}_[A-Z]+")
# ``module:attribute`` naming the SQLAlchemy metadata autogenerate compares with.
_METADATA_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
_MAX_IDENTIFIER_BYTES = 63
_RESERVED_DATABASES = frozenset({"template0", "template1", "cloudsqladmin", "postgres"})
_RESERVED_USER_PREFIXES = ("pg_", "cloudsql")
# Cloud SQL's editions: Enterprise Plus runs only on the performance-optimized machine types
# (``db-perf-optimized-N-<vCPUs>``), which Enterprise refuses; shared-core (``db-f1-micro``,
# ``db-g1-small``) and ``db-custom-*`` tiers are Enterprise's only.
_EDITIONS = ("ENTERPRISE", "ENTERPRISE_PLUS")
_PERF_OPTIMIZED_TIER = re.compile(r"db-perf-optimized-N-\d+")
# The oldest versions Enterprise Plus runs, per engine (MySQL 8.0, PostgreSQL 12).
_ENTERPRISE_PLUS_SINCE = {"mysql": (8, 0), "postgres": (12,)}


def _fail(primitive: Primitive, message: str) -> None:
    raise PrimitiveValidationError(f"{type(primitive).__name__}: {message}")


def _check_identifier(primitive: Primitive, kind: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        _fail(primitive, f"{kind} must be a non-empty string, got {value!r}")
    if len(value.encode()) > _MAX_IDENTIFIER_BYTES:
        _fail(primitive, f"{kind} {value!r} is longer than {_MAX_IDENTIFIER_BYTES} bytes (PostgreSQL's limit)")
    if value != value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        _fail(primitive, f"{kind} {value!r} must not have control characters or surrounding spaces")


@dataclasses.dataclass
class CloudSQLInstance(GCPPrimitive):
    """A Cloud SQL instance (a database server)."""

    instance_name: str
    project_id: str
    database_version: str
    settings: CloudSQLInstanceSettings
    region: str
    #: Cloud SQL's guard against deleting the instance (and its data) on GCP: on unless
    #: ``.options(deletion_protection=False)`` says otherwise. Not annotated, so not a dataclass
    #: field: the constructor stays BuildFlow's. The local target ignores it.
    deletion_protection = True

    resource_type: ClassVar[str] = "gcp.sql.DatabaseInstance"
    option_defaults: ClassVar[dict[str, Any]] = {"deletion_protection": True}
    replace_properties: ClassVar[frozenset[str]] = frozenset(
        {"instance_name", "project_id", "region", "database_version"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.settings, Mapping):
            self.settings = CloudSQLInstanceSettings(**self.settings)
        self.validate()

    def primitive_id(self) -> str:
        return f"{self.project_id}:{self.instance_name}"

    def connection_name(self) -> str:
        """The ``project:region:instance`` string the Cloud SQL connectors take."""
        return f"{self.project_id}:{self.region}:{self.instance_name}"

    def cloud_console_url(self) -> str:
        return f"https://console.cloud.google.com/sql/instances/{self.instance_name}?project={self.project_id}"

    def desired_properties(self) -> dict[str, Any]:
        return {
            "instance_name": self.instance_name,
            "project_id": self.project_id,
            "region": self.region,
            "database_version": self.database_version,
            "settings": self.settings.to_dict(),
        }

    def validate(self) -> None:
        name = self.instance_name
        if not isinstance(name, str) or not _INSTANCE_NAME.fullmatch(name):
            _fail(
                self,
                f"instance_name {name!r} is not a valid Cloud SQL instance name: use lowercase "
                "letters, digits and hyphens, starting with a letter (e.g. 'notes-db')",
            )
        if not isinstance(self.project_id, str) or not _PROJECT_ID.fullmatch(self.project_id):
            _fail(
                self,
                f"project_id {self.project_id!r} is not a valid Google Cloud project id: 6 to 30 "
                "lowercase letters, digits or hyphens, starting with a letter, not ending with a hyphen",
            )
        if len(self.primitive_id()) > _MAX_CONNECTION_ID:
            _fail(
                self,
                f"'{self.primitive_id()}' is {len(self.primitive_id())} characters; Cloud SQL allows "
                f"at most {_MAX_CONNECTION_ID} for project-id:instance-name, so shorten instance_name",
            )
        if not isinstance(self.region, str) or not _REGION.fullmatch(self.region):
            _fail(self, f"region {self.region!r} is not a Google Cloud region such as 'us-central1'")
        version = self.database_version
        if not isinstance(version, str) or not _DATABASE_VERSION.fullmatch(version):
            known = CloudSQLDatabaseVersion.all()
            _fail(
                self,
                f"database_version {version!r} is not a Cloud SQL version.{closest_name_hint(str(version), known)} "
                "Use a CloudSQLDatabaseVersion constant, e.g. CloudSQLDatabaseVersion.POSTGRES_15",
            )
        if not isinstance(self.settings, CloudSQLInstanceSettings):
            _fail(self, f"settings must be CloudSQLInstanceSettings(tier=...), got {type(self.settings).__name__}")
        if not isinstance(self.deletion_protection, bool):
            _fail(self, f"deletion_protection must be True or False, got {self.deletion_protection!r}")
        self._check_edition()

    @property
    def edition(self) -> str:
        """The Cloud SQL edition to ask for: the settings' own, else the one the tier runs on.

        Cloud SQL's own default depends on the version (Enterprise Plus for PostgreSQL 16+ and
        MySQL 8.4), which refuses the small tiers BuildFlow flows use, and BuildFlow never had
        users choose: so it is always set, from the tier.
        """
        given = self.settings.edition
        if given is not None:
            return str(given)
        return "ENTERPRISE_PLUS" if _PERF_OPTIMIZED_TIER.fullmatch(self.settings.tier) else "ENTERPRISE"

    def _check_edition(self) -> None:
        edition, tier = self.edition, self.settings.tier
        if edition not in _EDITIONS:
            _fail(
                self, f"settings edition {edition!r} is not a Cloud SQL edition: use 'ENTERPRISE' or 'ENTERPRISE_PLUS'"
            )
        perf_optimized = _PERF_OPTIMIZED_TIER.fullmatch(tier) is not None
        if edition == "ENTERPRISE_PLUS" and not perf_optimized:
            _fail(
                self,
                f"tier {tier!r} is not offered in the ENTERPRISE_PLUS edition, which takes only "
                "db-perf-optimized-N-<vCPUs> tiers (e.g. 'db-perf-optimized-N-2'): pick one of those, "
                "or edition='ENTERPRISE' for shared-core and db-custom-* tiers",
            )
        if edition == "ENTERPRISE" and perf_optimized:
            _fail(
                self,
                f"tier {tier!r} runs only in the ENTERPRISE_PLUS edition: set edition='ENTERPRISE_PLUS' "
                "(or leave edition out), or pick an ENTERPRISE tier such as 'db-custom-1-3840'",
            )
        since = _ENTERPRISE_PLUS_SINCE.get(self.engine)
        if edition == "ENTERPRISE_PLUS" and since is not None:
            numbers = tuple(int(n) for n in self.database_version.split("_")[1:])
            if numbers < since:
                _fail(
                    self,
                    f"{self.database_version} does not run in the ENTERPRISE_PLUS edition (it needs "
                    f"{self.engine.upper()} {'.'.join(map(str, since))} or later): use a newer "
                    "database_version or edition='ENTERPRISE'",
                )

    @property
    def engine(self) -> str:
        """``"postgres"``, ``"mysql"`` or ``"sqlserver"``, from ``database_version``."""
        return self.database_version.split("_", 1)[0].lower()


def _check_instance(primitive: Primitive, instance: Any) -> None:
    if not isinstance(instance, CloudSQLInstance):
        _fail(primitive, f"instance must be a CloudSQLInstance, got {type(instance).__name__}")


@dataclasses.dataclass
class CloudSQLDatabase(GCPPrimitive):
    """A database inside a Cloud SQL instance.

    ``.options(migrations="migrations")`` gives it an Alembic migrations folder (relative to the
    project): ``bfctl plan`` lists the revisions not applied yet and ``bfctl apply`` runs them.
    ``metadata="models:Base"`` (a module of the project and a declarative base or ``MetaData``
    in it) is what ``bfctl db revision --autogenerate`` compares the database with. Neither is
    a property of the database itself, so neither shows in its plan.
    """

    database_name: str
    instance: CloudSQLInstance
    #: Class-level defaults that ``.options()`` overrides per instance; not dataclass fields,
    #: so the constructor stays BuildFlow's.
    migrations: ClassVar[str | None] = None
    metadata: ClassVar[str | None] = None

    resource_type: ClassVar[str] = "gcp.sql.Database"
    option_defaults: ClassVar[dict[str, Any]] = {"migrations": None, "metadata": None}
    replace_properties: ClassVar[frozenset[str]] = frozenset({"instance", "database_name"})

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return f"{self.instance.primitive_id()}.{self.database_name}"

    def cloud_console_url(self) -> str:
        return (
            f"https://console.cloud.google.com/sql/instances/{self.instance.instance_name}"
            f"/databases?project={self.instance.project_id}"
        )

    def desired_properties(self) -> dict[str, Any]:
        return {"instance": self.instance.primitive_id(), "database_name": self.database_name}

    def parents(self) -> list[Primitive]:
        return [self.instance]

    def validate(self) -> None:
        _check_instance(self, self.instance)
        _check_identifier(self, "database_name", self.database_name)
        if self.database_name in _RESERVED_DATABASES:
            _fail(self, f"database_name {self.database_name!r} is reserved on Cloud SQL; choose another name")
        self._validate_migrations()

    def _validate_migrations(self) -> None:
        folder, metadata = self.migrations, self.metadata
        path = PurePosixPath(folder) if isinstance(folder, str) and folder.strip() else None
        if folder is not None and (path is None or path.is_absolute() or ".." in path.parts):
            _fail(self, f"migrations must be a folder relative to the project such as 'migrations', got {folder!r}")
        if metadata is None:
            return
        if folder is None:
            _fail(self, "metadata is only used with migrations: add migrations='migrations' to .options()")
        if not isinstance(metadata, str) or not _METADATA_REF.fullmatch(metadata):
            _fail(
                self,
                f"metadata must name a module of the project and an attribute in it, such as 'models:Base', "
                f"got {metadata!r}",
            )


@dataclasses.dataclass
class CloudSQLUser(GCPPrimitive):
    """A built-in (password) user of a Cloud SQL instance.

    ``password`` is a literal (shipped with the code, as in BuildFlow) or a
    :class:`buildflow.secrets.Secret`, whose value each target keeps out of the code.
    """

    user_name: str
    password: Password = dataclasses.field(repr=False)
    instance: CloudSQLInstance

    resource_type: ClassVar[str] = "gcp.sql.User"
    secret_properties: ClassVar[frozenset[str]] = frozenset({"password"})
    replace_properties: ClassVar[frozenset[str]] = frozenset({"instance", "user_name"})

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        # BuildFlow used "<instance id>.<user>", the id of a database of the same name; a
        # user and a database are commonly both called after the app, so users get their own.
        return f"{self.instance.primitive_id()}/users/{self.user_name}"

    def cloud_console_url(self) -> str:
        return (
            f"https://console.cloud.google.com/sql/instances/{self.instance.instance_name}"
            f"/users?project={self.instance.project_id}"
        )

    def desired_properties(self) -> dict[str, Any]:
        return {"instance": self.instance.primitive_id(), "user_name": self.user_name, "password": self.password}

    def parents(self) -> list[Primitive]:
        return [self.instance]

    def validate(self) -> None:
        _check_instance(self, self.instance)
        _check_identifier(self, "user_name", self.user_name)
        if self.user_name.startswith(_RESERVED_USER_PREFIXES):
            _fail(self, f"user_name {self.user_name!r} is reserved (names starting with 'pg_' or 'cloudsql')")
        if isinstance(self.password, Secret):
            return
        if not isinstance(self.password, str) or not self.password:
            _fail(self, "password must be a non-empty string or a buildflow.secrets.Secret")
        if "\x00" in self.password:
            _fail(self, "password must not contain NUL characters")
