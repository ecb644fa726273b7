"""SDP offer/answer (RFC 3264) for MSRP sessions and RFC 5547 file transfer.

* Offers: :func:`chat_stream`, :func:`file_push_stream`, :func:`file_pull_stream`,
  :func:`image_share_stream` build :class:`MsrpMedia` streams, :func:`build_offer`
  wraps them in a session description.
* Answers: :func:`answer_offer` answers a remote offer from our
  :class:`Capabilities`; streams we cannot take are rejected with port 0 (RFC 3264
  §6), and when nothing at all can be answered :class:`SdpError` (488) is raised.
* :func:`process_answer` checks the answer to one of our offers and tells which
  streams are up and who opens the TCP connection (RFC 6135 / RFC 4145).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from simpleim.errors import LocalProtocolError, SdpError

from .file_transfer import FileDescription, FileSelector
from .model import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)
from .msrp import Direction, MsrpMedia, Setup, intersect_types, is_msrp_media, type_matches

__all__ = [
    "DEFAULT_CHAT_TYPES",
    "DEFAULT_WRAPPED_TYPES",
    "Answer",
    "Capabilities",
    "LocalEndpoint",
    "NegotiatedStream",
    "StreamOutcome",
    "answer_offer",
    "build_offer",
    "capabilities_sdp",
    "disable_streams",
    "chat_stream",
    "file_pull_stream",
    "file_push_stream",
    "image_share_stream",
    "large_message_stream",
    "new_transfer_id",
    "process_answer",
    "require_sdp_content_type",
]

#: The CPM/RCS chat offer (seed 002, CPM session INVITE).
DEFAULT_CHAT_TYPES = ("message/cpim", "application/im-iscomposing+xml")
DEFAULT_WRAPPED_TYPES = ("text/plain", "message/imdn+xml")


@dataclass(frozen=True)
class LocalEndpoint:
    """Where our MSRP stack listens: address for ``c=``/``o=``, TCP port and our path.

    Every m-line is its own MSRP session, identified by the session-id of the MSRP URI in its
    ``a=path`` (RFC 4975 §8.1, §6; RFC 5547 §8: one m-line per file).  When answering several
    m-lines, give each its own path: ``stream_paths[i]`` for m-line ``i`` and/or
    ``path_factory(i)`` (called only for the m-lines that are accepted); ``path`` is the
    fallback (fine for a single stream).  :func:`answer_offer` refuses to give two accepted
    m-lines the same path.
    """

    address: str
    port: int
    path: tuple[str, ...]
    addrtype: str = "IP4"
    proto: str = "TCP/MSRP"
    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    stream_paths: tuple[tuple[str, ...], ...] = ()
    path_factory: Callable[[int], Sequence[str]] | None = field(default=None, compare=False)

    def path_for(self, index: int) -> tuple[str, ...]:
        """Our ``a=path`` for m-line ``index`` (0-based)."""
        if index < len(self.stream_paths) and self.stream_paths[index]:
            return tuple(self.stream_paths[index])
        if self.path_factory is not None:
            path = tuple(self.path_factory(index))
            if not path:
                raise LocalProtocolError(f"empty MSRP path for m-line {index + 1}")
            return path
        return self.path

    @property
    def connection(self) -> Connection:
        return Connection(self.address, self.addrtype)

    @property
    def origin(self) -> Origin:
        return Origin(self.username, self.session_id, self.session_version, "IN",
                      self.addrtype, self.address)


@dataclass(frozen=True)
class Capabilities:
    """What we are willing to receive and how we like to connect."""

    accept_types: tuple[str, ...] = ("message/cpim", "text/plain",
                                     "application/im-iscomposing+xml")
    accept_wrapped_types: tuple[str, ...] = ("*",)
    max_size: int | None = None
    #: what we pick when the offer says ``actpass`` (RFC 4145 §4.1 lets the answerer choose).
    setup_when_actpass: Setup = Setup.ACTIVE
    cema: bool = False
    tls: bool = True
    plain_tcp: bool = True
    accept_files: bool = True
    max_file_size: int | None = None


@dataclass(frozen=True)
class StreamOutcome:
    """What :func:`answer_offer` decided for one offered m-line."""

    index: int
    accepted: bool
    reason: str | None = None
    remote: MsrpMedia | None = None
    local: MsrpMedia | None = None
    we_connect: bool = False


@dataclass(frozen=True)
class Answer:
    sdp: SessionDescription
    streams: tuple[StreamOutcome, ...]

    @property
    def accepted(self) -> tuple[StreamOutcome, ...]:
        return tuple(s for s in self.streams if s.accepted)


@dataclass(frozen=True)
class NegotiatedStream:
    """One m-line after a completed offer/answer, from our (offerer's) point of view."""

    index: int
    accepted: bool
    local: MsrpMedia | None
    remote: MsrpMedia | None
    we_connect: bool


#: Decides on an offered file push: True to accept, False to reject (port 0), or a
#: FileDescription to accept with changes (e.g. a file-range to resume).
FilePolicy = Callable[[FileDescription], "bool | FileDescription"]
#: Finds the local file a pull offer asks for; None rejects the stream.
PullSource = Callable[[FileSelector], "FileDescription | None"]


def new_transfer_id() -> str:
    """A fresh file-transfer-id; RFC 5547 §8.1: it MUST be unique (random, >= 128 bits)."""
    return secrets.token_urlsafe(24).replace("-", "A").replace("_", "B")


def require_sdp_content_type(content_type: str | None) -> None:
    """Refuse a body that is not SDP with 415 (RFC 3261 §21.4.16 Unsupported Media Type)."""
    if content_type is None or content_type.split(";", 1)[0].strip().lower() != "application/sdp":
        raise SdpError(f"expected application/sdp, got {content_type!r}", status=415,
                       where="Content-Type")


# --------------------------------------------------------------------------- offers

def chat_stream(local: LocalEndpoint, *, accept_types: tuple[str, ...] = DEFAULT_CHAT_TYPES,
                accept_wrapped_types: tuple[str, ...] = DEFAULT_WRAPPED_TYPES,
                setup: Setup | None = Setup.ACTIVE, cema: bool = False,
                max_size: int | None = None,
                direction: Direction = Direction.SENDRECV) -> MsrpMedia:
    """A chat / CPM session stream (seed 002: ``a=setup:active``, ``sendrecv``)."""
    if not accept_types:
        # RFC 4975 §8.6: the accept-types attribute MUST be present.
        raise LocalProtocolError("accept-types must not be empty")
    return MsrpMedia(port=local.port, proto=local.proto, path=local.path,
                     accept_types=accept_types, accept_wrapped_types=accept_wrapped_types,
                     max_size=max_size, setup=setup, cema=cema, direction=direction)


def file_push_stream(local: LocalEndpoint, file: FileDescription, *,
                     accept_types: tuple[str, ...] = ("message/cpim",),
                     accept_wrapped_types: tuple[str, ...] = ("*",),
                     setup: Setup | None = Setup.ACTIVE, cema: bool = False,
                     title: str | None = None) -> MsrpMedia:
    """RFC 5547 §8.2.1 push: the offerer sends, so the stream is ``sendonly``."""
    sel = file.selector
    if sel.name is None or sel.type is None or sel.size is None:
        # OMA CPM 7.4.1 (checklist GFT-04): a push SHALL carry name, size and type.
        raise LocalProtocolError("a pushed file needs name, type and size in its file-selector")
    if file.transfer_id is None:
        file = replace(file, transfer_id=new_transfer_id())
    return MsrpMedia(port=local.port, proto=local.proto, path=local.path,
                     accept_types=accept_types, accept_wrapped_types=accept_wrapped_types,
                     setup=setup, cema=cema, direction=Direction.SENDONLY, file=file,
                     title=title)


def file_pull_stream(local: LocalEndpoint, selector: FileSelector, *,
                     transfer_id: str | None = None,
                     accept_types: tuple[str, ...] = ("message/cpim",),
                     accept_wrapped_types: tuple[str, ...] = ("*",),
                     setup: Setup | None = Setup.ACTIVE, cema: bool = False) -> MsrpMedia:
    """RFC 5547 §8.2.2 pull: the offerer receives, so the stream is ``recvonly``."""
    if selector == FileSelector():
        raise LocalProtocolError("a pull needs at least one selector")
    file = FileDescription(selector=selector, transfer_id=transfer_id or new_transfer_id())
    return MsrpMedia(port=local.port, proto=local.proto, path=local.path,
                     accept_types=accept_types, accept_wrapped_types=accept_wrapped_types,
                     setup=setup, cema=cema, direction=Direction.RECVONLY, file=file)


def image_share_stream(local: LocalEndpoint, file: FileDescription, *,
                       title: str | None = None) -> MsrpMedia:
    """GSMA IR.79 §2.4 image share: sendonly, ``accept-types:*``, type in file-selector."""
    if file.selector.type is None:
        # IR.79 §2.4: the file-selector "shall contain at least the 'type' parameter".
        raise LocalProtocolError("image share needs the type in the file-selector")
    if file.transfer_id is None:
        file = replace(file, transfer_id=new_transfer_id())  # IR.79 §2.4: shall be set
    return MsrpMedia(port=local.port, proto=local.proto, path=local.path, accept_types=("*",),
                     setup=None, direction=Direction.SENDONLY, file=file, title=title)


def large_message_stream(local: LocalEndpoint, size: int, *,
                         accept_wrapped_types: tuple[str, ...] = ("text/plain",),
                         setup: Setup | None = Setup.ACTIVE) -> MsrpMedia:
    """Large Message Mode (seed 002, CPM-03): sendonly, CPIM, ``file-selector:size:N``."""
    if size < 0:
        raise LocalProtocolError("size must not be negative")
    return MsrpMedia(port=local.port, proto=local.proto, path=local.path,
                     accept_types=("message/cpim",), accept_wrapped_types=accept_wrapped_types,
                     setup=setup, direction=Direction.SENDONLY,
                     file=FileDescription(FileSelector(size=size)))


def capabilities_sdp(local: LocalEndpoint, caps: Capabilities, *,
                     file_transfer: bool = True) -> SessionDescription:
    """SDP for a 200 OK to OPTIONS: one ``m=message 0`` line listing what we accept
    (GSMA IR.79 §2.3: a single message media description, port 0, ``a=file-selector``
    and ``a=max-size`` to announce file transfer / image share)."""
    attrs = [Attribute("accept-types", " ".join(caps.accept_types))]
    if caps.accept_wrapped_types:
        attrs.append(Attribute("accept-wrapped-types", " ".join(caps.accept_wrapped_types)))
    if file_transfer and caps.accept_files:
        attrs.append(Attribute("file-selector"))
    if caps.max_size is not None:
        attrs.append(Attribute("max-size", str(caps.max_size)))
    media = MediaDescription("message", 0, local.proto, ("*",), attributes=tuple(attrs))
    return SessionDescription(origin=local.origin, session_name="-",
                              connection=local.connection, times=(Timing(0, 0),),
                              media=(media,))


def disable_streams(previous: SessionDescription, indexes: Sequence[int]) -> SessionDescription:
    """A new offer that closes the given m-lines (port 0) - e.g. a finished file stream
    (OMA SIMPLE IM 10.2; RFC 5547 §8.6).  RFC 3264 §8: the m-lines stay in place
    (§8.2 removing a stream = port 0) and the o= version MUST increase by one."""
    media = list(previous.media)
    for i in indexes:
        if not 0 <= i < len(media):
            raise LocalProtocolError(f"no m-line {i}")
        media[i] = _reject(media[i])
    origin = replace(previous.origin,
                     sess_version=str(int(previous.origin.sess_version) + 1))
    return replace(previous, origin=origin, media=tuple(media))


def build_offer(local: LocalEndpoint, streams: Sequence[MsrpMedia], *,
                session_name: str = "-", information: str | None = None) -> SessionDescription:
    """A complete offer: ``v o s [i] c t`` then one m-line per stream."""
    if not streams:
        raise LocalProtocolError("an offer needs at least one stream")
    return SessionDescription(origin=local.origin, session_name=session_name,
                              information=information, connection=local.connection,
                              times=(Timing(0, 0),),
                              media=tuple(s.to_media() for s in streams))


# --------------------------------------------------------------------------- answers

def _reject(media: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: a rejected stream keeps its m-line with port 0 (and at least one format).
    return MediaDescription(media=media.media, port=0, proto=media.proto,
                            formats=media.formats or ("*",))


def _answer_setup(offered: Setup | None, caps: Capabilities) -> tuple[Setup, bool]:
    """(our setup value, whether we open the connection) - RFC 4145 §4.1 / RFC 6135 §4."""
    if offered is None or offered is Setup.ACTIVE:
        # RFC 4145 §4.1: absent in the offer means 'active'; RFC 4975 §5.4: the offerer
        # (the active side) opens the connection.
        return Setup.PASSIVE, False
    if offered is Setup.PASSIVE:
        return Setup.ACTIVE, True
    if offered is Setup.HOLDCONN:
        return Setup.HOLDCONN, False
    choice = caps.setup_when_actpass
    if choice not in (Setup.ACTIVE, Setup.PASSIVE):
        choice = Setup.ACTIVE
    return choice, choice is Setup.ACTIVE


def _answer_types(remote: MsrpMedia, caps: Capabilities) -> tuple[str, ...]:
    return intersect_types(remote.accept_types, caps.accept_types)


def _acceptable(media_type: str, patterns: tuple[str, ...]) -> bool:
    return any(type_matches(p, media_type) for p in patterns)


def _answer_stream(index: int, media: MediaDescription, offer: SessionDescription,
                   local: LocalEndpoint, caps: Capabilities, file_policy: FilePolicy | None,
                   pull_source: PullSource | None) -> tuple[MediaDescription, StreamOutcome]:
    def reject(reason: str, remote: MsrpMedia | None = None) -> tuple[MediaDescription,
                                                                      StreamOutcome]:
        return _reject(media), StreamOutcome(index, False, reason, remote)

    if media.port == 0:
        return reject("stream disabled in the offer")  # RFC 3264 §6
    if not is_msrp_media(media):
        return reject(f"unsupported media {media.media} {media.proto}")
    remote = MsrpMedia.from_media(media, offer)
    if remote.tls and not caps.tls:
        return reject("TCP/TLS/MSRP not supported", remote)
    if not remote.tls and not caps.plain_tcp:
        return reject("TCP/MSRP without TLS not allowed", remote)
    if not remote.path:
        return reject("missing a=path (RFC 4975 §8.2)", remote)
    if not remote.accept_types:
        return reject("missing a=accept-types (RFC 4975 §8.6)", remote)
    setup, we_connect = _answer_setup(remote.setup, caps)
    types = _answer_types(remote, caps)
    file: FileDescription | None = None
    direction = remote.direction.reversed()  # RFC 3264 §6.1
    if remote.file is not None:
        if remote.direction is Direction.SENDONLY:
            # RFC 5547 §8.3.1: push - we are the file receiver described by the offer.
            if not caps.accept_files:
                return reject("file transfer not accepted", remote)
            ftype = remote.file.selector.type
            if ftype is not None and not (_acceptable(ftype, caps.accept_types)
                                          or _acceptable(ftype, caps.accept_wrapped_types)):
                return reject(f"file type {ftype} not accepted", remote)
            size = remote.file.selector.size
            if caps.max_file_size is not None and size is not None and size > caps.max_file_size:
                return reject("file too large", remote)
            decision: bool | FileDescription = True if file_policy is None else \
                file_policy(remote.file)
            if decision is False:
                return reject("file declined", remote)
            chosen = remote.file if decision is True else decision
            if not isinstance(chosen, FileDescription):  # pragma: no cover - typing guard
                return reject("file declined", remote)
            # RFC 5547 §8.3.1: the answer repeats the file-selector and file-transfer-id
            # of the offer; disposition/date/icon describe the sender's file only.
            file = FileDescription(selector=remote.file.selector,
                                   transfer_id=remote.file.transfer_id, range=chosen.range)
            if ftype is not None and not any(t.lower() == ftype.lower() for t in types):
                types = (*types, ftype)
        elif remote.direction is Direction.RECVONLY:
            # RFC 5547 §8.3.2: pull - we are the file sender; we must own the file.
            found = pull_source(remote.file.selector) if pull_source else None
            if found is None or not remote.file.selector.matches(found.selector):
                return reject("requested file not available", remote)
            ftype = found.selector.type
            if ftype is not None and not (_acceptable(ftype, remote.accept_types)
                                          or _acceptable(ftype, remote.accept_wrapped_types)):
                return reject(f"peer does not accept {ftype}", remote)
            file = replace(found, transfer_id=remote.file.transfer_id)
        else:
            # RFC 5547 §8: a file transfer stream is unidirectional (sendonly / recvonly).
            return reject("file-selector on a non-unidirectional stream", remote)
    if not types:
        return reject("no common accept-types", remote)
    wrapped: tuple[str, ...] = ()
    if any(t.lower() == "message/cpim" for t in types):
        wrapped = (intersect_types(remote.accept_wrapped_types, caps.accept_wrapped_types)
                   or caps.accept_wrapped_types)
    ours = MsrpMedia(
        port=local.port, proto=media.proto, path=local.path_for(index), accept_types=types,
        accept_wrapped_types=wrapped, max_size=caps.max_size,
        setup=setup,
        connection_attr="new" if remote.connection_attr is not None else None,
        # RFC 6714: include msrp-cema in the answer only if both sides support it.
        cema=caps.cema and remote.cema,
        direction=direction, file=file,
    )
    return ours.to_media(), StreamOutcome(index, True, None, remote, ours, we_connect)


def answer_offer(offer: SessionDescription, local: LocalEndpoint,
                 caps: Capabilities = Capabilities(),  # noqa: B008
                 *, file_policy: FilePolicy | None = None,
                 pull_source: PullSource | None = None) -> Answer:
    """Answer ``offer``; raise :class:`SdpError` 488 if no stream can be accepted."""
    if not offer.media:
        raise SdpError("offer has no media", status=488, where="m=")
    lines: list[MediaDescription] = []
    outcomes: list[StreamOutcome] = []
    for index, media in enumerate(offer.media):
        line, outcome = _answer_stream(index, media, offer, local, caps, file_policy,
                                       pull_source)
        lines.append(line)
        outcomes.append(outcome)
    if not any(o.accepted for o in outcomes):
        first = next((o for o in outcomes if o.reason != "stream disabled in the offer"),
                     outcomes[0])
        # RFC 3264 §6 / OMA SIMPLE IM 9.2.1.2: nothing acceptable -> 488 Not Acceptable Here.
        raise SdpError(f"no acceptable media: {first.reason}", status=488,
                       where=f"m-line {first.index + 1}")
    # RFC 4975 §8.1/§6: the session-id in a=path identifies one MSRP session per m-line;
    # two accepted lines on one path would mix their messages (e.g. two files, RFC 5547 §8).
    seen: dict[tuple[str, ...], int] = {}
    for o in outcomes:
        if o.accepted and o.local is not None:
            other = seen.setdefault(o.local.path, o.index)
            if other != o.index:
                raise LocalProtocolError(
                    f"m-lines {other + 1} and {o.index + 1} would share the MSRP path "
                    f"{' '.join(o.local.path)}: give LocalEndpoint per-stream paths")
    # RFC 3264 §6: the answer has exactly as many m-lines as the offer, in the same order.
    sdp = SessionDescription(origin=local.origin, session_name="-",
                             connection=local.connection, times=(Timing(0, 0),),
                             media=tuple(lines))
    return Answer(sdp, tuple(outcomes))


def process_answer(offer: SessionDescription,
                   answer: SessionDescription) -> tuple[NegotiatedStream, ...]:
    """Check ``answer`` against our ``offer`` (RFC 3264 §6, §7; RFC 5547 §8; RFC 6135)."""
    if len(answer.media) != len(offer.media):
        # RFC 3264 §6: "The answer MUST contain exactly the same number of m lines".
        raise SdpError("answer has a different number of m-lines", status=488, where="m=")
    out: list[NegotiatedStream] = []
    for index, (mine, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        where = f"m-line {index + 1}"
        if theirs.media != mine.media:
            raise SdpError("answer changed the media type", status=488, where=where)
        if mine.port == 0 or theirs.port == 0 or not is_msrp_media(mine):
            out.append(NegotiatedStream(index, False, None, None, False))
            continue
        local = MsrpMedia.from_media(mine, offer)
        remote = MsrpMedia.from_media(theirs, answer)
        if not remote.path:
            raise SdpError("answer lacks a=path (RFC 4975 §8.2)", status=488, where=where)
        if local.file is not None:
            if remote.file is None or remote.file.transfer_id != local.file.transfer_id:
                # RFC 5547 §8.1: the answer carries the offer's file-transfer-id.
                raise SdpError("file-transfer-id not echoed", status=488, where=where)
        if local.direction in (Direction.SENDONLY, Direction.RECVONLY) \
                and remote.direction not in (local.direction.reversed(), Direction.INACTIVE):
            raise SdpError("answer direction does not match the offer", status=488, where=where)
        mine_setup = local.setup or Setup.ACTIVE
        theirs_setup = remote.setup or Setup.PASSIVE
        if mine_setup is Setup.ACTPASS:
            we_connect = theirs_setup is Setup.PASSIVE
        elif mine_setup is Setup.ACTIVE:
            if theirs_setup is Setup.ACTIVE:
                raise SdpError("both sides chose setup:active", status=488, where=where)
            we_connect = theirs_setup is Setup.PASSIVE
        elif mine_setup is Setup.PASSIVE:
            if theirs_setup is Setup.PASSIVE:
                raise SdpError("both sides chose setup:passive", status=488, where=where)
            we_connect = False
        else:
            we_connect = False
        out.append(NegotiatedStream(index, True, local, remote, we_connect))
    return tuple(out)
