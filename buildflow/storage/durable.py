"""File operations whose effect survives a crash once they return (fsync, not just write)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_fdatasync = getattr(os, "fdatasync", os.fsync)  # data and size; not the mtime


def fsync_directory(path: Path) -> None:
    """Make the entries of ``path`` (a file created or renamed in it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose new directories survive a crash."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_directory(directory.parent)


def append(fd: int, data: bytes) -> None:
    """Write all of ``data`` at the end of ``fd`` and sync it; on failure the file is cut back
    to its old length, so a batch is in the file entirely or not at all."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        _fdatasync(fd)
    except BaseException:
        os.ftruncate(fd, start)
        raise


def create_exclusive(path: Path, *, append_mode: bool = True) -> int:
    """Open a new file (never an existing one) and make its directory entry durable."""
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR | (os.O_APPEND if append_mode else 0)
    fd = os.open(path, flags, 0o644)
    fsync_directory(path.parent)
    return fd


def _synced_copy(path: Path, data: bytes, mode: int) -> Path:
    """A new temporary file beside ``path`` holding ``data``, synced: what is then put in place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        append(fd, data)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, all or nothing: a temporary file synced and then
    linked into place (refusing to replace an existing file)."""
    tmp = _synced_copy(path, data, 0o644)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)


def whole_lines_end(fd: int) -> int:
    """The offset after the file's last complete line (0 when it has none)."""
    pos = os.fstat(fd).st_size
    while pos > 0:
        start = max(0, pos - 65536)
        newline = os.pread(fd, pos - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        pos = start
    return 0


def cut_torn_tail(fd: int) -> None:
    """Cut a last line without its newline: what a process killed mid-append leaves (never
    acknowledged), so readers see whole lines and the next append does not glue onto it."""
    keep = whole_lines_end(fd)
    if keep < os.fstat(fd).st_size:
        os.ftruncate(fd, keep)
        _fdatasync(fd)


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a mix,
    and the new one survives a crash once this returns (synced temporary file, rename, synced
    directory)."""
    tmp = _synced_copy(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
