"""Google Cloud value types used by the GCP primitives (no cloud SDK imported)."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, ClassVar

from buildflow.io.primitive import closest_name_hint
from buildflow.types.portable import FileChangeEvent


class CloudSQLDatabaseVersion:
    """Cloud SQL ``database_version`` strings (plain constants, as in BuildFlow)."""

    POSTGRES_9_6 = "POSTGRES_9_6"
    POSTGRES_10 = "POSTGRES_10"
    POSTGRES_11 = "POSTGRES_11"
    POSTGRES_12 = "POSTGRES_12"
    POSTGRES_13 = "POSTGRES_13"
    POSTGRES_14 = "POSTGRES_14"
    POSTGRES_15 = "POSTGRES_15"
    POSTGRES_16 = "POSTGRES_16"
    POSTGRES_17 = "POSTGRES_17"
    MYSQL_5_6 = "MYSQL_5_6"
    MYSQL_5_7 = "MYSQL_5_7"
    MYSQL_8_0 = "MYSQL_8_0"
    MYSQL_8_4 = "MYSQL_8_4"
    SQLSERVER_2017_STANDARD = "SQLSERVER_2017_STANDARD"
    SQLSERVER_2017_ENTERPRISE = "SQLSERVER_2017_ENTERPRISE"
    SQLSERVER_2017_EXPRESS = "SQLSERVER_2017_EXPRESS"
    SQLSERVER_2017_WEB = "SQLSERVER_2017_WEB"
    SQLSERVER_2019_STANDARD = "SQLSERVER_2019_STANDARD"
    SQLSERVER_2019_ENTERPRISE = "SQLSERVER_2019_ENTERPRISE"
    SQLSERVER_2019_EXPRESS = "SQLSERVER_2019_EXPRESS"
    SQLSERVER_2019_WEB = "SQLSERVER_2019_WEB"
    SQLSERVER_2022_STANDARD = "SQLSERVER_2022_STANDARD"
    SQLSERVER_2022_ENTERPRISE = "SQLSERVER_2022_ENTERPRISE"
    SQLSERVER_2022_EXPRESS = "SQLSERVER_2022_EXPRESS"
    SQLSERVER_2022_WEB = "SQLSERVER_2022_WEB"

    @classmethod
    def all(cls) -> list[str]:
        return [v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)]


class CloudSQLInstanceSettings:  # noqa: PLW1641 - mutable, so unhashable: __eq__ alone leaves __hash__ None
    """Instance settings with the keyword names of pulumi-gcp's ``DatabaseInstanceSettingsArgs``.

    Nested blocks (``backup_configuration``, ``ip_configuration``, ``database_flags``, ...) are
    plain dicts and lists with the same snake_case keys as the pulumi-gcp argument classes. Keep
    the values JSON-able: they are compared with the applied state to plan changes.
    """

    #: Writable settings of pulumi-gcp ``sql.DatabaseInstanceSettingsArgs`` besides ``tier``
    #: (the computed ``version`` and ``effective_availability_type`` are left out).
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "activation_policy",
            "active_directory_config",
            "advanced_machine_features",
            "auto_upgrade_enabled",
            "availability_type",
            "backup_configuration",
            "collation",
            "connection_pool_configs",
            "connector_enforcement",
            "data_api_access",
            "data_cache_config",
            "data_disk_provisioned_iops",
            "data_disk_provisioned_throughput",
            "database_flags",
            "deletion_protection_enabled",
            "deny_maintenance_period",
            "disk_autoresize",
            "disk_autoresize_limit",
            "disk_size",
            "disk_type",
            "edition",
            "enable_dataplex_integration",
            "enable_google_ml_integration",
            "final_backup_config",
            "insights_config",
            "ip_configuration",
            "location_preference",
            "maintenance_window",
            "password_validation_policy",
            "pricing_plan",
            "read_pool_auto_scale_config",
            "retain_backups_on_delete",
            "sql_server_audit_config",
            "time_zone",
            "user_labels",
        }
    )

    def __init__(self, tier: str, **settings: Any) -> None:
        if not isinstance(tier, str) or not tier:
            raise ValueError(
                f"CloudSQLInstanceSettings: tier must be a non-empty string such as 'db-f1-micro', got {tier!r}"
            )
        for name, value in settings.items():
            if name not in self.FIELDS:
                raise TypeError(
                    f"CloudSQLInstanceSettings got an unexpected keyword `{name}`."
                    f"{closest_name_hint(name, self.FIELDS | {'tier'})}"
                )
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"CloudSQLInstanceSettings `{name}` must be plain data (str, int, float, bool, "
                    f"list, dict), got {type(value).__name__}"
                ) from None
        self.tier = tier
        self._settings = {k: v for k, v in settings.items() if v is not None}

    def __getattr__(self, name: str) -> Any:
        if name in CloudSQLInstanceSettings.FIELDS:
            return self.__dict__.get("_settings", {}).get(name)
        raise AttributeError(f"'CloudSQLInstanceSettings' object has no attribute '{name}'")

    def to_dict(self) -> dict[str, Any]:
        """The settings that were set, ``tier`` first, others sorted by name."""
        return {"tier": self.tier, **{k: self._settings[k] for k in sorted(self._settings)}}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CloudSQLInstanceSettings) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"CloudSQLInstanceSettings({args})"


class GCSChangeStreamEventType(enum.Enum):
    """Cloud Storage notification event types (BuildFlow's members and values)."""

    OBJECT_FINALIZE = "created"
    OBJECT_DELETE = "deleted"
    OBJECT_ARCHIVE = "archive"
    OBJECT_METADATA_UPDATE = "metadata_update"


@dataclasses.dataclass
class GCSFileChangeEvent(FileChangeEvent):
    """A change of an object in a bucket; ``blob`` downloads it (a deleted object has none)."""

    @property
    def blob(self) -> bytes:
        if self.event_type == GCSChangeStreamEventType.OBJECT_DELETE:
            raise ValueError(f"{self.file_path} was deleted: it has no contents")
        return super().blob


@dataclasses.dataclass
class PubsubMessage:
    """A Pub/Sub message with its attributes (a subscription with ``include_attributes=True``)."""

    data: bytes
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    ack_id: str = ""
