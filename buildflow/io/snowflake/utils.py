"""BuildFlow's helpers for Snowflake key-pair authentication (``cryptography`` imported when called)."""

from __future__ import annotations

from typing import Any


def _private_key(file_path: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    with open(file_path, "rb") as pem:
        return serialization.load_pem_private_key(pem.read(), password=None)


def read_private_key_file(file_path: str) -> str:
    """The unencrypted PEM private key in ``file_path``, as PKCS#8 PEM text."""
    from cryptography.hazmat.primitives import serialization

    data: bytes = _private_key(file_path).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return data.decode()


def read_private_key_file_bytes(file_path: str) -> bytes:
    """The unencrypted PEM private key in ``file_path``, as PKCS#8 DER bytes."""
    from cryptography.hazmat.primitives import serialization

    data: bytes = _private_key(file_path).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return data
