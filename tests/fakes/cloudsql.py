"""A stand-in for Google's side of the Cloud SQL connector, on this machine.

The connector makes two Admin API calls (``connectSettings`` and ``generateEphemeralCert``)
and then opens TLS 1.3 to the instance on port 3307, presenting the ephemeral certificate,
and speaks the PostgreSQL protocol inside the tunnel. This stand-in answers both calls with
its own certificate authority, and listens on 127.0.0.1:3307 with TLS, requiring a client
certificate it issued, forwarding the bytes to a PostgreSQL server (the embedded one).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PROXY_PORT = 3307  # fixed by the connector
TOKEN = "stand-in-oauth-token"  # what /token gives for a key from credentials_file()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, public_key: Any, issuer: x509.Name, signer: Any, *, ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class CloudSQLStandIn:
    """Admin API on an ephemeral HTTP port, TLS proxy on 127.0.0.1:3307, both on one thread."""

    def __init__(self, connection_name: str, database_version: str, backend: tuple[str, int]) -> None:
        self.project, self.region, self.instance = connection_name.split(":")
        self.database_version, self.backend = database_version, backend
        self.api_calls: list[tuple[str, str, str]] = []  # (method, path, authorization)
        self.tunnels: list[dict[str, Any]] = []  # TLS version and client certificate of each connection
        self._dir = Path(tempfile.mkdtemp(prefix="cloudsql-standin-"))
        self._ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._ca = _issue(
            "stand-in Cloud SQL CA", self._ca_key.public_key(), _name("stand-in Cloud SQL CA"), self._ca_key, ca=True
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.endpoint = ""

    # -- credentials for another process --------------------------------------------------------
    def credentials_file(self, path: Path) -> Path:
        """A service account key whose ``token_uri`` is this stand-in's (google-auth honours it),
        for processes that find their credentials as Application Default Credentials do."""
        key = self._ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        account = {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": "stand-in",
            "private_key": key.decode(),
            "client_email": f"deployer@{self.project}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{self.endpoint}/token",
        }
        path.write_text(json.dumps(account))
        return path

    # -- the two Admin API calls ----------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        self.api_calls.append((request.method, request.path, request.headers.get("Authorization", "")))
        if request.method == "POST" and request.path == "/token":  # a signed JWT exchanged for a token
            return web.json_response({"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        prefix = f"/sql/v1beta4/projects/{self.project}/instances/{self.instance}"
        if request.method == "GET" and request.path == f"{prefix}/connectSettings":
            return web.json_response(
                {
                    "kind": "sql#connectSettings",
                    "serverCaCert": {"cert": _pem(self._ca)},
                    "ipAddresses": [{"type": "PRIMARY", "ipAddress": "127.0.0.1"}],
                    "region": self.region,
                    "databaseVersion": self.database_version,
                    "backendType": "SECOND_GEN",
                    "pscEnabled": False,
                }
            )
        if request.method == "POST" and request.path == f"{prefix}:generateEphemeralCert":
            body = await request.json()
            key = serialization.load_pem_public_key(body["public_key"].encode())
            cert = _issue("ephemeral", key, self._ca.subject, self._ca_key)
            return web.json_response({"ephemeralCert": {"kind": "sql#sslCert", "cert": _pem(cert)}})
        return web.json_response({"error": {"message": f"no such call {request.method} {request.path}"}}, status=404)

    # -- the instance's TLS port ----------------------------------------------------------------
    def _server_context(self) -> ssl.SSLContext:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _issue(f"{self.project}:{self.instance}", key.public_key(), self._ca.subject, self._ca_key)
        (self._dir / "server.pem").write_text(_pem(cert))
        (self._dir / "server.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self._dir / "ca.pem").write_text(_pem(self._ca))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(self._dir / "server.pem", self._dir / "server.key")
        context.verify_mode = ssl.CERT_REQUIRED  # only clients holding an ephemeral cert we issued
        context.load_verify_locations(self._dir / "ca.pem")
        return context

    async def _tunnel(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        tls = client_writer.get_extra_info("ssl_object")
        self.tunnels.append({"version": tls.version(), "client": tls.getpeercert()["subject"]})
        backend_reader, backend_writer = await asyncio.open_connection(*self.backend)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # a started site has its server
        self.endpoint = f"http://127.0.0.1:{port}"
        self._proxy = await asyncio.start_server(self._tunnel, "127.0.0.1", PROXY_PORT, ssl=self._server_context())

    async def _stop(self) -> None:
        self._proxy.close()
        await self._runner.cleanup()

    def __enter__(self) -> Self:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        shutil.rmtree(self._dir, ignore_errors=True)
