"""File plumbing for transfers: hashing, type guessing and resumable sinks (RFC 5547 §6
file-range; the MSRP layer resumes with ``send_file(offset=)`` / ``receive_with(resume_from=)``)."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from pathlib import Path

from simpleim.sdp.file_transfer import FileHash

from .thumbnails import guess_image_type

__all__ = ["sha1_of", "file_hash", "guess_type", "PartialSink"]

_READ = 1 << 20


def sha1_of(path: Path, limit: int | None = None) -> bytes:
    h = hashlib.sha1()  # noqa: S324 - RFC 5547 §6 / CPM: the file-selector hash is sha-1
    left = limit
    with open(path, "rb") as f:
        while True:
            n = _READ if left is None else min(_READ, left)
            if n <= 0:
                break
            block = f.read(n)
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.digest()


def file_hash(path: Path) -> FileHash:
    return FileHash.from_digest("sha-1", sha1_of(path))


def guess_type(path: Path) -> str:
    return guess_image_type(path) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"


class PartialSink:
    """:class:`~simpleim.msrp.ChunkSink` writing into a partial file kept on abort (so that
    the transfer can be resumed); the file is not truncated (resume appends)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        self._fd: int | None = os.open(path, flags, 0o600)
        self.closed = False
        self.aborted = False
        self.written = 0

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        if self._fd is None:
            return
        view = memoryview(data)
        off = offset
        while view:
            n = os.pwrite(self._fd, view, off)
            view = view[n:]
            off += n
        self.written = max(self.written, off)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.closed = True

    def abort(self) -> None:
        # Keep the data: a later offer of the same file resumes from here.
        self.close()
        self.aborted = True
