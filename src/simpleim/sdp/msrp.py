"""Typed view of an MSRP media stream (``m=message <port> TCP/MSRP *``).

RFC 4975 §8 (§8.2 path, §8.6 content types) defines ``a=path``,
``accept-types``, ``accept-wrapped-types`` and ``max-size``; RFC 6135 adds
``a=setup`` (and RFC 4145's ``a=connection``) for the alternative connection
model; RFC 6714 adds ``a=msrp-cema``; RFC 5547 adds the file attributes (see
:mod:`simpleim.sdp.file_transfer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from simpleim.errors import SdpError

from .file_transfer import FILE_ATTRIBUTE_NAMES, FileDescription
from .model import Attribute, Connection, MediaDescription, SessionDescription

__all__ = [
    "MSRP_PROTOCOLS",
    "Direction",
    "MsrpMedia",
    "Setup",
    "intersect_types",
    "is_msrp_media",
    "type_matches",
]

#: RFC 4975 §8.1: the m-line protocols (TCP/TLS/MSRP for msrps: URIs).
MSRP_PROTOCOLS = ("TCP/MSRP", "TCP/TLS/MSRP")

_MSRP_KNOWN = frozenset({"path", "accept-types", "accept-wrapped-types", "max-size", "setup",
                         "connection", "msrp-cema", "sendrecv", "sendonly", "recvonly",
                         "inactive"}) | FILE_ATTRIBUTE_NAMES


class Direction(StrEnum):
    """Media direction attributes (RFC 4566 §6; RFC 3264 §5.1 / §6.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def reversed(self) -> Direction:
        """RFC 3264 §6.1: sendonly is answered recvonly and vice versa."""
        if self is Direction.SENDONLY:
            return Direction.RECVONLY
        if self is Direction.RECVONLY:
            return Direction.SENDONLY
        return self

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)


class Setup(StrEnum):
    """``a=setup`` values (RFC 4145 §4; used by MSRP per RFC 6135 §4)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"


def is_msrp_media(media: MediaDescription) -> bool:
    return media.media == "message" and media.proto.upper() in MSRP_PROTOCOLS


def type_matches(pattern: str, media_type: str) -> bool:
    """RFC 4975 §8.6: ``*`` matches anything, ``type/*`` any subtype; case-insensitive."""
    p = pattern.split(";", 1)[0].strip().lower()
    t = media_type.split(";", 1)[0].strip().lower()
    if p == "*" or t == "*":
        return True
    pt, _, ps = p.partition("/")
    tt, _, ts = t.partition("/")
    if pt != tt:
        return False
    return ps == "*" or ts == "*" or ps == ts


def intersect_types(offered: tuple[str, ...], local: tuple[str, ...]) -> tuple[str, ...]:
    """Types both sides accept, in the offer's order; wildcards narrow to the concrete side."""
    out: list[str] = []

    def add(t: str) -> None:
        if t.lower() not in (o.lower() for o in out):
            out.append(t)

    for o in offered:
        for loc in local:
            if not type_matches(o, loc) and not type_matches(loc, o):
                continue
            # Keep the more specific of the two (a concrete type beats a wildcard).
            if o == "*" or (o.endswith("/*") and loc != "*"):
                add(loc)
            else:
                add(o)
    return tuple(out)


@dataclass(frozen=True)
class MsrpMedia:
    """Everything MSRP cares about in one ``m=message`` stream."""

    port: int
    path: tuple[str, ...]
    accept_types: tuple[str, ...]
    proto: str = "TCP/MSRP"
    accept_wrapped_types: tuple[str, ...] = ()
    max_size: int | None = None
    setup: Setup | None = None
    connection_attr: str | None = None
    cema: bool = False
    direction: Direction = Direction.SENDRECV
    file: FileDescription | None = None
    title: str | None = None
    connection: Connection | None = None
    extra: tuple[Attribute, ...] = ()

    @property
    def tls(self) -> bool:
        return self.proto.upper() == "TCP/TLS/MSRP"

    @classmethod
    def from_media(cls, media: MediaDescription,
                   session: SessionDescription | None = None) -> MsrpMedia:
        """Validate and type an MSRP stream; syntax errors raise SdpError 400."""
        if not is_msrp_media(media):
            raise SdpError(f"not an MSRP stream: {media.media} {media.proto}", status=488,
                           where="m=")
        path_v = media.get("path")
        path = tuple(path_v.split()) if path_v else ()
        for uri in path:
            if not uri.lower().startswith(("msrp://", "msrps://")):
                raise SdpError(f"a=path entry is not an MSRP URI: {uri!r}", status=400,
                               where="a=path")
        accept = media.get("accept-types")
        wrapped = media.get("accept-wrapped-types")
        max_size_v = media.get("max-size")
        max_size: int | None = None
        if max_size_v is not None:
            digits = max_size_v.strip(" \t")
            # ASCII digits only (str.isdigit/strip accept more than int() does: U+00B2,
            # \x1d... found by the fuzz campaign as a ValueError)
            if not digits.isascii() or not digits.isdigit():
                raise SdpError("a=max-size must be an integer", status=400, where="a=max-size")
            max_size = int(digits)
        setup_v = media.get("setup")
        setup: Setup | None = None
        if setup_v is not None:
            try:
                setup = Setup(setup_v.strip().lower())
            except ValueError:
                raise SdpError(f"unknown a=setup value {setup_v!r}", status=400,
                               where="a=setup") from None
        direction: Direction | None = None
        for attr in media.attributes:
            if attr.name in Direction.__members__.values():
                direction = Direction(attr.name)
        if direction is None and session is not None:
            # RFC 4566 §6: a session-level direction applies to media without their own.
            for attr in session.attributes:
                if attr.name in Direction.__members__.values():
                    direction = Direction(attr.name)
        return cls(
            port=media.port,
            proto=media.proto,
            path=path,
            accept_types=tuple(accept.split()) if accept else (),
            accept_wrapped_types=tuple(wrapped.split()) if wrapped else (),
            max_size=max_size,
            setup=setup,
            connection_attr=media.get("connection"),
            cema=media.has("msrp-cema"),
            direction=direction or Direction.SENDRECV,
            file=FileDescription.from_media(media),
            title=media.title,
            connection=media.connection or (session.connection if session else None),
            extra=tuple(a for a in media.attributes if a.name not in _MSRP_KNOWN),
        )

    def to_media(self, *, media_connection: bool = False) -> MediaDescription:
        """Build the ``m=`` section; attribute order follows the RCS/RFC 4975 examples."""
        attrs: list[Attribute] = []
        if self.accept_types:
            attrs.append(Attribute("accept-types", " ".join(self.accept_types)))
        if self.accept_wrapped_types:
            attrs.append(Attribute("accept-wrapped-types", " ".join(self.accept_wrapped_types)))
        if self.max_size is not None:
            attrs.append(Attribute("max-size", str(self.max_size)))
        if self.path:
            attrs.append(Attribute("path", " ".join(self.path)))
        if self.setup is not None:
            attrs.append(Attribute("setup", self.setup.value))
        if self.connection_attr is not None:
            attrs.append(Attribute("connection", self.connection_attr))
        if self.cema:
            attrs.append(Attribute("msrp-cema"))
        attrs.append(Attribute(self.direction.value))
        if self.file is not None:
            attrs += self.file.attributes()
        attrs += self.extra
        conns = (self.connection,) if media_connection and self.connection else ()
        return MediaDescription(media="message", port=self.port, proto=self.proto,
                                formats=("*",), title=self.title, connections=conns,
                                attributes=tuple(attrs))
