"""Form fields and uploaded files: ``Form``, ``File`` and ``UploadFile``, as BuildFlow
re-exported them (``from buildflow.requests import File, Form, UploadFile``).

A handler parameter whose default is ``Form()`` or ``File()``, or whose annotation is
``UploadFile``, comes from a form body (``multipart/form-data`` or
``application/x-www-form-urlencoded``) instead of JSON:

```python
@service.endpoint("/photos", method="POST")
async def upload(photo: UploadFile, caption: str = Form(""), tags: list[str] = Form([])) -> dict:
    return {"name": photo.filename, "bytes": len(await photo.read()), "caption": caption}
```

``Form(...)``/``File(...)`` (or no default) make the field required; a field's name is the
parameter's unless ``alias`` names it. Declarations only: the runtime reads the form.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["File", "Form", "FormParam", "UploadFile"]

#: Reads up to this size stay on the event loop; larger ones go to a thread.
_READ_INLINE = 1 << 20


@dataclasses.dataclass(frozen=True)
class FormParam:
    """What ``Form()`` or ``File()`` declares about one form field."""

    default: Any = ...
    alias: str | None = None
    description: str | None = None
    is_file: bool = False
    #: FastAPI validation options given, which bfctl does not apply: start-up refuses them by name.
    unsupported: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is ...


def Form(
    default: Any = ...,
    *,
    alias: str | None = None,
    title: str | None = None,
    description: str | None = None,
    media_type: str = "application/x-www-form-urlencoded",
    **validation: Any,
) -> Any:
    """A form field (``...``: required)."""
    return FormParam(default, alias, description or title, False, tuple(sorted(validation)))


def File(
    default: Any = ...,
    *,
    alias: str | None = None,
    title: str | None = None,
    description: str | None = None,
    media_type: str = "multipart/form-data",
    **validation: Any,
) -> Any:
    """A file field of a multipart form (``...``: required); ``bytes`` or ``UploadFile``."""
    return FormParam(default, alias, description or title, True, tuple(sorted(validation)))


class UploadFile:
    """One uploaded file: its name, type and headers as the client sent them, and its content,
    kept in a temporary file that is removed once the request is done."""

    __slots__ = ("content_type", "file", "filename", "headers", "size")

    def __init__(
        self,
        file: IO[bytes],
        *,
        filename: str | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        size: int | None = None,
    ) -> None:
        self.file = file
        self.filename = filename
        self.content_type = content_type
        self.headers: Mapping[str, str] = headers or {}
        self.size = size if size is not None else _size_of(file)

    async def read(self, size: int = -1) -> bytes:
        if 0 <= size <= _READ_INLINE or (size < 0 and (self.size or 0) <= _READ_INLINE):
            return self.file.read(size)
        return await asyncio.to_thread(self.file.read, size)

    async def seek(self, offset: int) -> None:
        self.file.seek(offset)

    async def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size = _size_of(self.file)

    async def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, size={self.size!r}, content_type={self.content_type!r})"


def _size_of(file: IO[bytes]) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, AttributeError, ValueError):  # an in-memory file has no descriptor
        position = file.tell()
        size = file.seek(0, os.SEEK_END)
        file.seek(position)
        return size
