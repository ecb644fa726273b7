"""Where received files go: sanitized names, no path traversal, never an overwrite.

Partial transfers are kept under ``.partial/<sha1-hex>`` so that a later offer of the same
file (same hash) can be resumed with ``a=file-range`` (RFC 5547 §8.4 / §6 file-range).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import unicodedata
from pathlib import Path

__all__ = ["sanitize_name", "unique_path", "DownloadDir"]

_BAD = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_MAX_NAME = 200
_RESERVED = frozenset({"", ".", ".."})


def sanitize_name(name: str | None, *, default: str = "file") -> str:
    """A safe base name: no directories, no control or shell-special characters, no leading
    dot (hidden files), bounded length.  ``../../etc/passwd`` becomes ``passwd``."""
    if not name:
        return default
    text = unicodedata.normalize("NFC", name)
    # Format characters (Unicode category Cf) are invisible: bidi controls such as U+202E
    # RIGHT-TO-LEFT OVERRIDE make "invoice\u202egpj.exe" show as "invoiceexe.jpg"; zero-width
    # characters make lookalike names.  They are stripped, like the other unsafe characters.
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _BAD.sub("_", text).strip().lstrip(".").strip()
    if text in _RESERVED:
        return default
    if len(text.encode("utf-8")) > _MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        if not dot or len(ext) > 16:
            stem, ext = text, ""
        while len((stem + ("." + ext if ext else "")).encode("utf-8")) > _MAX_NAME:
            stem = stem[:-1]
        text = stem + ("." + ext if ext else "")
    return text or default


def unique_path(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name (1).ext``... when it exists (no overwrite)."""
    candidate = directory / name
    if not candidate.exists():
        return candidate
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for i in range(1, 10_000):
        candidate = directory / (f"{stem} ({i}).{ext}" if ext else f"{stem} ({i})")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"too many files named {name} in {directory}")


class DownloadDir:
    """The download directory of one account.

    ``partial_ttl``: partial files untouched for longer are removed (:meth:`expire_partials`);
    ``max_bytes``: bound of the directory (finished + partial files), see :meth:`room`.
    """

    def __init__(self, path: str | os.PathLike[str], *, partial_ttl: float | None = None,
                 max_bytes: int | None = None) -> None:
        self.path = Path(path).expanduser()
        self.partial_ttl = partial_ttl
        self.max_bytes = max_bytes

    def usage(self) -> int:
        """Bytes held by the directory's files and partial files (not recursive beyond)."""
        total = 0
        for d in (self.path, self.path / ".partial"):
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
        return total

    def room(self) -> int | None:
        """Bytes that may still be written (None: unbounded)."""
        if self.max_bytes is None:
            return None
        return max(0, self.max_bytes - self.usage())

    def expire_partials(self, now: float | None = None) -> list[Path]:
        """Remove partial files not written for ``partial_ttl`` seconds; returns them."""
        if self.partial_ttl is None:
            return []
        now = time.time() if now is None else now
        gone: list[Path] = []
        try:
            with os.scandir(self.path / ".partial") as it:
                for e in it:
                    if (e.is_file(follow_symlinks=False)
                            and now - e.stat(follow_symlinks=False).st_mtime > self.partial_ttl):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(e.path)
                            gone.append(Path(e.path))
        except FileNotFoundError:
            pass
        return gone

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def partial_path(self, key: str) -> Path:
        """Where the partial data of file ``key`` (hex SHA-1 or transfer id) is kept."""
        safe = re.sub(r"[^0-9A-Za-z_-]", "", key)[:80] or "unknown"
        d = self.path / ".partial"
        d.mkdir(parents=True, exist_ok=True)
        return d / safe

    def partial_size(self, key: str) -> int:
        p = self.partial_path(key)
        return p.stat().st_size if p.exists() else 0

    def finish(self, partial: Path, name: str | None) -> Path:
        """Move a complete file to its final, unique, sanitized name."""
        self.ensure()
        final = unique_path(self.path, sanitize_name(name))
        # O_EXCL-like: os.link fails if the target appeared meanwhile; fall back to rename.
        try:
            os.link(partial, final)
            partial.unlink()
        except FileExistsError:
            final = unique_path(self.path, sanitize_name(name))
            partial.replace(final)
        except OSError:
            partial.replace(final)
        return final
