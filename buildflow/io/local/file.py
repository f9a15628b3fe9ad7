"""A file sink on this machine: each worker appends to its own file."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, ClassVar

from buildflow.io.primitive import LocalPrimitive, PrimitiveValidationError
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class File(LocalPrimitive):
    """Rows go to ``<file_path without extension>-<8 hex>.<format>``, one file per worker, so
    concurrent workers never interleave (as BuildFlow wrote one file per replica). A relative
    ``file_path`` is relative to the project directory."""

    file_path: str
    file_format: FileFormat

    resource_type: ClassVar[str] = "local.File"

    def __post_init__(self) -> None:
        if isinstance(self.file_format, str):
            with contextlib.suppress(ValueError):  # validate() names the valid formats
                self.file_format = FileFormat(self.file_format.lower())
        self.validate()

    def primitive_id(self) -> str:
        return f"file:{self.file_path}"

    def desired_properties(self) -> dict[str, Any]:
        return {"file_path": self.file_path, "file_format": self.file_format.value}

    def validate(self) -> None:
        if not isinstance(self.file_path, str) or not self.file_path.strip() or self.file_path.endswith(("/", "\\")):
            raise PrimitiveValidationError(f"File: file_path must name a file, got {self.file_path!r}")
        if "\x00" in self.file_path:
            raise PrimitiveValidationError("File: file_path must not contain NUL characters")
        if not isinstance(self.file_format, FileFormat):
            formats = ", ".join(f"FileFormat.{f.name}" for f in FileFormat)
            raise PrimitiveValidationError(f"File: file_format must be one of {formats}, got {self.file_format!r}")
