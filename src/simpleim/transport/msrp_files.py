"""Streaming MSRP bodies from and to disk, a chunk at a time (never the whole file in memory)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FileSource", "FileSink"]


class FileSource:
    """:class:`simpleim.msrp.ChunkSource` over a file (unbuffered reads of ``n`` bytes)."""

    def __init__(self, path: str | os.PathLike[str], offset: int = 0) -> None:
        self.path = Path(path)
        self._f = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self._f.fileno()).st_size
        if offset:
            self._f.seek(offset)      # resume from the middle (RFC 5547 §6 file-range)

    def read(self, n: int) -> bytes:
        if self._f.closed:
            return b""
        out = self._f.read(n)
        return out if out is not None else b""

    def close(self) -> None:
        self._f.close()


class FileSink:
    """:class:`simpleim.msrp.ChunkSink` writing at offsets into a file (out-of-order chunks use
    ``pwrite``).  An aborted message's file is removed.

    ``resume=True``: the file is a partial copy kept from an interrupted transfer: it is
    opened without truncation (new data lands at its offsets, RFC 5547 §6 file-range) and it
    is kept when the message is aborted, so that a later transfer can resume it again."""

    def __init__(self, path: str | os.PathLike[str], *, resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        if resume:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            self._f = open(fd, "r+b", buffering=0)  # noqa: SIM115 - closed by close()/abort()
            self._pos = -1          # every write goes through pwrite at its offset
        else:
            self._f = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed by close()/abort()
            self._pos = 0
        self.closed = False
        self.aborted = False

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        if offset == self._pos:
            while view:
                n = self._f.write(view)
                if n is None:  # pragma: no cover - regular files do not block
                    continue
                view = view[n:]
            self._pos += len(data)
        else:
            fd = self._f.fileno()
            off = offset
            while view:
                n = os.pwrite(fd, view, off)
                view = view[n:]
                off += n

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.closed = True

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.aborted = True
        if self.resume:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
