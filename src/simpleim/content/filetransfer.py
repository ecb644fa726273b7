"""Helpers for the bodies of file-transfer INVITEs (RFC 5547 §9.1, OMA CPM / RCS).

A file-transfer INVITE may be ``multipart/mixed`` with an SDP part, a
``message/cpim`` part (RCS: the IMDN envelope of the transfer) and icon parts
referenced from SDP by ``a=file-icon:cid:<Content-ID>`` (RFC 5547 §6, RFC 2392).
Splitting the multipart body is the SIP core's job (``simpleim.sip.multipart``);
these helpers take the parts as ``(headers, body)`` pairs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from simpleim.errors import ContentError

from .cpim import CpimMessage, parse_cpim

__all__ = [
    "BodyPart",
    "FileIcon",
    "FileTransferBody",
    "cid_matches",
    "decode_part",
    "find_part_by_cid",
    "split_file_transfer_body",
]

DEFAULT_MAX_ICON = 256 * 1024


@dataclass(frozen=True)
class BodyPart:
    """One MIME part: its headers (name, value) in order and its raw body."""

    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def of(cls, headers: Iterable[tuple[str, str]], body: bytes) -> BodyPart:
        return cls(tuple(headers), body)

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.strip().lower() == name.lower():
                return v.strip()
        return None

    @property
    def content_type(self) -> str | None:
        v = self.get("Content-Type")
        return None if v is None else v.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class FileIcon:
    content_type: str | None
    data: bytes


def cid_matches(cid_url: str, content_id: str) -> bool:
    """RFC 2392: ``cid:foo@bar`` (URL-encoded) names the part with ``Content-ID: <foo@bar>``."""
    ref = cid_url.strip()
    if ref.lower().startswith("cid:"):
        ref = ref[4:]
    ref = unquote(ref)
    cid = content_id.strip()
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1]
    return ref == cid


def find_part_by_cid(parts: Sequence[BodyPart], cid_url: str) -> BodyPart | None:
    for part in parts:
        cid = part.get("Content-ID")
        if cid is not None and cid_matches(cid_url, cid):
            return part
    return None


def decode_part(part: BodyPart, *, max_size: int = DEFAULT_MAX_ICON) -> bytes:
    """Undo Content-Transfer-Encoding (RFC 2045 §6): base64, 7bit, 8bit, binary."""
    cte = (part.get("Content-Transfer-Encoding") or "binary").lower()
    if cte in ("binary", "7bit", "8bit"):
        data = part.body
    elif cte == "base64":
        if len(part.body) > (max_size * 4) // 3 + 4096:
            raise ContentError("encoded part too large", status=413,
                               where="Content-Transfer-Encoding")
        compact = b"".join(part.body.split())
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise ContentError("bad base64 body part", status=400,
                               where="Content-Transfer-Encoding") from None
    else:
        raise ContentError(f"unsupported Content-Transfer-Encoding {cte!r}", status=415,
                           where="Content-Transfer-Encoding")
    if len(data) > max_size:
        raise ContentError("body part too large", status=413, where="Content-Transfer-Encoding")
    return data


@dataclass(frozen=True)
class FileTransferBody:
    sdp: bytes | None
    cpim: CpimMessage | None
    parts: tuple[BodyPart, ...]

    def icon(self, cid_url: str | None, *, max_size: int = DEFAULT_MAX_ICON) -> FileIcon | None:
        """The icon part named by ``a=file-icon`` (``cid:...``), decoded; None if absent."""
        if cid_url is None:
            return None
        part = find_part_by_cid(self.parts, cid_url)
        if part is None:
            return None
        return FileIcon(part.content_type, decode_part(part, max_size=max_size))


def split_file_transfer_body(parts: Sequence[BodyPart]) -> FileTransferBody:
    """Pick the SDP and CPIM parts; ContentError 400 for several SDPs, bad CPIM."""
    sdp: bytes | None = None
    cpim: CpimMessage | None = None
    for part in parts:
        ctype = part.content_type
        if ctype == "application/sdp":
            if sdp is not None:
                raise ContentError("more than one SDP body part", status=400,
                                   where="multipart/mixed")
            sdp = decode_part(part, max_size=65536)
        elif ctype == "message/cpim" and cpim is None:
            cpim = parse_cpim(decode_part(part, max_size=1024 * 1024))
    return FileTransferBody(sdp, cpim, tuple(parts))
