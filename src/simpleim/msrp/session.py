"""One MSRP session (one SDP ``m=message`` line): paths, accepted types, send queue, reassembly.

A session is sans-I/O and knows nothing about sockets: it is attached to a
:class:`~simpleim.msrp.connection.MsrpConnection` which pulls its chunks and feeds it requests.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Callable, Sequence

from simpleim.errors import LocalProtocolError
from simpleim.msrp.chunker import (
    DEFAULT_CHUNK_SIZE,
    BytesSource,
    ChunkSource,
    OutgoingMessage,
    OutgoingState,
    ready,
)
from simpleim.msrp.fsm import Binding
from simpleim.msrp.message import MsrpRequest
from simpleim.msrp.reassembly import (
    DEFAULT_RECEIVE_LIMITS,
    ChunkSink,
    Reassembler,
    ReceiveLimits,
)
from simpleim.msrp.uri import MsrpUri, format_path, path_matches

__all__ = ["MsrpSession", "new_ident", "counter_ids", "content_type_accepted"]


def new_ident(nbytes: int = 8) -> str:
    """A fresh transaction id / Message-ID / session-id (RFC 4975 §9 ident, §14.1: random)."""
    return secrets.token_hex(nbytes)


def counter_ids() -> Callable[[], str]:
    """32-character transaction ids (the longest ident, RFC 4975 §9): a random prefix and a
    counter.  The end-line ``-------<tid>`` is what both ends search each body for (§7.1: the
    sender checks it is absent, the receiver finds it); a longer needle lets ``bytes.find``
    skip further, halving the per-byte cost of both scans."""
    prefix = new_ident(11)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter) & 0xFFFFFFFFFF:010x}"


def content_type_accepted(content_type: str, accept: Sequence[str]) -> bool:
    """RFC 4975 §8.6: ``a=accept-types`` entries are types, ``type/*`` or ``*``."""
    ct = content_type.split(";", 1)[0].strip().lower()
    major = ct.split("/", 1)[0]
    for a in accept:
        a = a.strip().lower()
        if a == "*" or a == ct or (a.endswith("/*") and a[:-2] == major):
            return True
    return False


class MsrpSession:
    """Local end of an MSRP session.

    ``local_uri``: our URI (its session-id identifies the session, RFC 4975 §6).
    ``remote_path``: the peer's ``a=path`` (leftmost first).  ``relay_path``: our own relays'
    ``Use-Path`` (RFC 4976 §5.2) - prepended to every To-Path; the path we advertise in SDP is
    ``relay_path + [local_uri]`` (:attr:`local_path`).
    """

    def __init__(
        self,
        local_uri: MsrpUri,
        remote_path: Sequence[MsrpUri] = (),
        *,
        relay_path: Sequence[MsrpUri] = (),
        accept_types: Sequence[str] = ("*",),
        max_size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cema: bool = False,
        sink_factory: Callable[[MsrpRequest], ChunkSink] | None = None,
        id_factory: Callable[[], str] = new_ident,
        interrupt_slice: int | None = None,
        receive_limits: ReceiveLimits = DEFAULT_RECEIVE_LIMITS,
    ) -> None:
        if local_uri.session_id is None:
            raise LocalProtocolError("the local MSRP URI needs a session-id (RFC 4975 §6)")
        if chunk_size < 1:
            raise LocalProtocolError("chunk size must be positive")
        if interrupt_slice is not None and interrupt_slice < 1:
            raise LocalProtocolError("interrupt slice must be positive")
        self.local_uri = local_uri
        #: When set (and smaller than ``chunk_size``), chunks of messages of known size are
        #: written ``interrupt_slice`` bytes at a time with ``Byte-Range: n-*/total`` and are
        #: interrupted (ended with ``+``) as soon as another message or a response has to go
        #: out on the connection (RFC 4975 §7.1.1).  None: every chunk is written whole.
        self.interrupt_slice = interrupt_slice
        self.remote_path: list[MsrpUri] = list(remote_path)
        self.relay_path: list[MsrpUri] = list(relay_path)
        self.accept_types = tuple(accept_types)
        self.max_size = max_size
        self.chunk_size = chunk_size
        self.cema = cema
        self.new_id = id_factory
        self.reassembler = Reassembler(sink_factory, max_size=max_size, limits=receive_limits)
        #: When True the transaction response to the chunk that completes a message (and its
        #: success REPORT) waits for :meth:`MsrpConnection.acknowledge`: a store-and-forward
        #: receiver answers only once the message is kept (RFC 4975 §7.3 leaves the moment
        #: of the response to the receiver; the sender's transaction timer bounds it).
        self.hold_acks = False
        self.binding = Binding.UNBOUND
        self.connection: object | None = None     # the MsrpConnection we are bound to
        self._urgent: deque[OutgoingMessage] = deque()   # small messages jump the queue
        self._bulk: deque[OutgoingMessage] = deque()
        self.outgoing: dict[str, OutgoingMessage] = {}   # by Message-ID, until final
        self._to_path_str: str | None = None
        self._from_path_str: str | None = None

    def set_sink_factory(self, factory: Callable[[MsrpRequest], ChunkSink], *,
                         resume_from: int = 0, max_size: int | None = None) -> None:
        """Where the next incoming messages go (called with the first chunk's request).

        ``resume_from=N``: the sinks already hold bytes 1..N of the message (a partial file
        of an interrupted transfer); the peer sends from ``Byte-Range: N+1-`` on and the
        message completes when the rest arrived (RFC 5547 §6 file-range).
        ``max_size``: the largest message these sinks take, enforced on the bytes received
        (413 past it)."""
        self.reassembler.set_sink_factory(factory, resume_from=resume_from, max_size=max_size)

    # ------------------------------------------------------------------ paths
    @property
    def session_id(self) -> str:
        return self.local_uri.session_id or ""

    @property
    def local_path(self) -> list[MsrpUri]:
        """What to put in our ``a=path`` (RFC 4975 §8.2, RFC 4976 §5.2)."""
        return [*self.relay_path, self.local_uri]

    @property
    def to_path(self) -> list[MsrpUri]:
        """To-Path of our requests: our relays, then the peer's path (RFC 4976 §5.2/§7.1)."""
        return [*self.relay_path, *self.remote_path]

    def to_path_text(self) -> str:
        if self._to_path_str is None:
            if not self.remote_path:
                raise LocalProtocolError("the remote path of the session is not known yet")
            self._to_path_str = format_path(self.to_path)
        return self._to_path_str

    def from_path_text(self) -> str:
        if self._from_path_str is None:
            self._from_path_str = str(self.local_uri)
        return self._from_path_str

    def set_remote_path(self, path: Sequence[MsrpUri]) -> None:
        """A new SDP answer / re-INVITE changed the peer's path (RFC 4975 §8.4)."""
        self.remote_path = list(path)
        self._to_path_str = None

    def set_relay_path(self, path: Sequence[MsrpUri]) -> None:
        """Our relay granted a Use-Path (RFC 4976 §5.2): it goes in front of our a=path and of
        every To-Path we send."""
        self.relay_path = list(path)
        self._to_path_str = None

    def matches_to(self, uri: MsrpUri) -> bool:
        """Is ``uri`` (leftmost To-Path URI of a request) us?

        RFC 4975 §6.1 comparison; with CEMA (RFC 6714 §4.2/§4.3) a middlebox may anchor the
        connection and the address part is not meaningful - only the session-id is compared.
        """
        if self.cema:
            return uri.session_id == self.local_uri.session_id
        return self.local_uri.matches(uri)

    def origin_ok(self, from_path: Sequence[MsrpUri]) -> bool:
        """Does a request come from our peer?  The last From-Path URI is its originator
        (relays prepend themselves, RFC 4976 §7.1); it must be the last URI of the peer's
        ``a=path`` (RFC 4975 §7.3).  Skipped when the path is unknown or CEMA is in use."""
        if not self.remote_path or not from_path or self.cema:
            return True
        return self.remote_path[-1].matches(from_path[-1])

    def same_remote(self, path: Sequence[MsrpUri]) -> bool:
        return path_matches(self.remote_path, list(path))

    # ------------------------------------------------------------------ sending
    def send(
        self,
        data: bytes | None = None,
        content_type: str = "text/plain",
        *,
        source: ChunkSource | None = None,
        total: int | None = None,
        message_id: str | None = None,
        success_report: bool = False,
        failure_report: str = "yes",
        headers: Sequence[tuple[str, str]] = (),
        offset: int = 0,
        length: int | None = None,
    ) -> OutgoingMessage:
        """Queue a message; chunks leave when the connection pumps (RFC 4975 §7.1.1).

        Give ``data`` (in memory) or ``source`` + ``total`` (streamed; ``total=None`` for a
        body of unknown length: the Byte-Range total is ``*`` until the last chunk).

        ``offset`` / ``length`` send only part of the message: the first chunk carries
        ``Byte-Range: offset+1-.../total`` and the last one (flagged ``$``) ends at
        ``offset+length`` (RFC 5547 §6 ``file-range``, used to resume an interrupted
        transfer; RFC 4975 §7.1.1 Byte-Range).  ``source`` must be positioned at ``offset``
        (``data`` is the whole body and is sliced here).
        """
        if (data is None) == (source is None):
            raise LocalProtocolError("give exactly one of data / source")
        if failure_report not in ("yes", "no", "partial"):
            raise LocalProtocolError(f"bad Failure-Report {failure_report!r}")
        if offset < 0 or (length is not None and length < 0):
            raise LocalProtocolError("offset and length must not be negative")
        if data is not None:
            total = len(data)
            if offset or length is not None:
                data = data[offset: None if length is None else offset + length]
            source = BytesSource(data)
        if source is None:  # pragma: no cover - excluded above, keeps type checkers happy
            raise LocalProtocolError("no source")
        stop: int | None = None
        if length is not None:
            stop = offset + length
            if total is not None and stop > total:
                raise LocalProtocolError(f"range {offset + 1}-{stop} beyond the total {total}")
        elif total is not None and offset > total:
            raise LocalProtocolError(f"offset {offset} beyond the total {total}")
        mid = message_id or self.new_id()
        if mid in self.outgoing:
            raise LocalProtocolError(f"Message-ID {mid} is already in use")
        msg = OutgoingMessage(mid, content_type, source, total, success_report,
                              failure_report, tuple(headers), offset=offset, start=offset,
                              stop=stop)
        self.outgoing[mid] = msg
        end = msg.end
        if end is not None and end - offset <= self.chunk_size:
            self._urgent.append(msg)
        else:
            self._bulk.append(msg)
        return msg

    def abort(self, message_id: str) -> OutgoingMessage:
        """Abandon an outgoing message: its next chunk ends with ``#`` (RFC 4975 §7.1.1)."""
        msg = self.outgoing.get(message_id)
        if msg is None or msg.finished_sending:
            raise LocalProtocolError(f"message {message_id} is not being sent")
        msg.abort_requested = True
        if msg not in self._urgent and msg not in self._bulk:
            self._urgent.append(msg)
        else:  # move it to the front so the abort goes out now
            for q in (self._urgent, self._bulk):
                if msg in q:
                    q.remove(msg)
            self._urgent.appendleft(msg)
        return msg

    def unsent(self) -> int:
        """How many queued messages still have chunks to send."""
        return len(self._urgent) + len(self._bulk)

    def next_message(self) -> OutgoingMessage | None:
        """The message whose chunk goes next: short messages first, so a short message is not
        stuck behind a long transfer (RFC 4975 §5.1: chunking lets messages interleave)."""
        for q in (self._urgent, self._bulk):
            while q:
                msg = q[0]
                if msg.finished_sending or msg.state in (OutgoingState.FAILED,):
                    q.popleft()
                    continue
                break
            for msg in q:
                # a message switched as it arrives waits for its next bytes (PipeSource)
                # without holding back the ones behind it
                if not (msg.finished_sending or msg.state is OutgoingState.FAILED) \
                        and ready(msg):
                    return msg
        return None

    def has_pending(self) -> bool:
        return self.next_message() is not None

    def forget(self, msg: OutgoingMessage) -> None:
        """Drop a message in a final state from the table."""
        self.outgoing.pop(msg.message_id, None)
