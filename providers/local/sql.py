"""The admin SQL the local target runs, shaped after what Cloud SQL does.

Cloud SQL makes databases owned by the role ``cloudsqlsuperuser`` and makes every user it
creates a member of that role; doing the same here means a declared user can create tables
in a declared database on the laptop exactly as in the cloud.

Passwords reach the server only as SCRAM verifiers, so no plain password can end up in the
server log, even in the text of a failed statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from bfctl.providers.secrets import scram_verifier, secret_matches
from buildflow.storage import ddl
from buildflow.types.schema import Column

if TYPE_CHECKING:
    from pg8000.native import Connection


def identifier(name: str) -> str:
    """pg8000's quoting, imported when the admin SQL first runs: serving a flow that declares no
    database never pays for pg8000 (and scramp, asn1crypto, dateutil) at start-up."""
    from pg8000.native import identifier as quoted

    return str(quoted(name))


def literal(value: str) -> str:
    from pg8000.native import literal as quoted

    return str(quoted(value))


OWNER_ROLE = "cloudsqlsuperuser"


def server_version(conn: Connection) -> str:
    return str(conn.run("SHOW server_version")[0][0])


def ensure_owner_role(conn: Connection) -> None:
    if not conn.run("SELECT 1 FROM pg_roles WHERE rolname = :n", n=OWNER_ROLE):
        conn.run(f"CREATE ROLE {identifier(OWNER_ROLE)} NOLOGIN CREATEDB CREATEROLE")


def database_exists(conn: Connection, name: str) -> bool:
    return bool(conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=name))


def create_database(conn: Connection, name: str) -> bool:
    """Create ``name`` unless it exists (an interrupted apply may have made it); True if made."""
    if database_exists(conn, name):
        return False
    conn.run(f"CREATE DATABASE {identifier(name)} OWNER {identifier(OWNER_ROLE)}")
    return True


def drop_database(conn: Connection, name: str) -> None:
    conn.run(f"DROP DATABASE IF EXISTS {identifier(name)} WITH (FORCE)")


def role_password(conn: Connection, name: str) -> tuple[bool, str | None]:
    """(the role exists, its stored password verifier)."""
    rows = conn.run("SELECT rolpassword FROM pg_authid WHERE rolname = :n", n=name)
    return (True, rows[0][0]) if rows else (False, None)


def set_login_role(conn: Connection, name: str, password: str) -> str:
    """Create the login role ``name`` or reset its password; returns the stored verifier."""
    verifier = scram_verifier(password)
    exists, _ = role_password(conn, name)
    if exists:
        conn.run(f"ALTER ROLE {identifier(name)} WITH LOGIN PASSWORD {literal(verifier)}")
    else:
        conn.run(f"CREATE ROLE {identifier(name)} LOGIN PASSWORD {literal(verifier)} IN ROLE {identifier(OWNER_ROLE)}")
    return verifier


def ensure_login_role(conn: Connection, name: str, password: str) -> bool:
    """Make ``name`` log in with ``password``; True when something had to change."""
    exists, stored = role_password(conn, name)
    if exists and secret_matches(password, stored):
        return False
    set_login_role(conn, name, password)
    return True


def drop_role(conn: Connection, connect: Callable[[str], AbstractContextManager[Connection]], name: str) -> None:
    """Drop ``name``, first handing what it owns in every database to the owner role.

    Tables the user created are data the app wrote: they stay, owned by ``cloudsqlsuperuser``.
    """
    if not role_password(conn, name)[0]:
        return
    for database in _databases(conn):
        with connect(database) as db:
            db.run(f"REASSIGN OWNED BY {identifier(name)} TO {identifier(OWNER_ROLE)}")
            db.run(f"DROP OWNED BY {identifier(name)}")
    conn.run(f"DROP ROLE {identifier(name)}")


def _databases(conn: Connection) -> Iterator[str]:
    for (name,) in conn.run("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname"):
        yield name


# -- tables (CloudSQLTable) --------------------------------------------------------------------
def table_columns(conn: Connection, table: str) -> set[str] | None:
    """The column names of ``table`` in the connected database, or None when it is missing."""
    return {name for (name,) in conn.run(ddl.existing_columns(table))} or None


def ensure_table(conn: Connection, table: str, columns: list[Column]) -> str:
    """Create ``table`` (owned by the owner role, as Cloud SQL users' tables are) or add the
    columns it lacks; says what it did."""
    existing = table_columns(conn, table)
    conn.run(f"SET ROLE {identifier(OWNER_ROLE)}")
    try:
        if existing is None:
            conn.run(ddl.create_table("postgres", table, columns))
            return "created"
        added = ddl.missing_columns(columns, existing)
        for column in added:
            conn.run(ddl.add_column("postgres", table, column))
    finally:
        conn.run("RESET ROLE")
    return f"added column(s) {', '.join(c.name for c in added)}" if added else "exists"


def drop_table(conn: Connection, table: str) -> None:
    conn.run(f"DROP TABLE IF EXISTS {identifier(table)}")


def ensure_sink_role(conn: Connection, name: str, password: str) -> None:
    """The login role sink writers use; its sessions act as the owner role, so the tables it
    creates belong to the owner role like every other table."""
    ensure_login_role(conn, name, password)
    conn.run(f"ALTER ROLE {identifier(name)} SET role = {literal(OWNER_ROLE)}")
