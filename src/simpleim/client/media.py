"""MSRP media of a session: one :class:`EndpointSession` per ``m=message`` line, SDP answers
built line by line so that every stream gets its own MSRP URI (RFC 4975 §8.1: the session-id
in a=path identifies the stream)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace

from simpleim.errors import SdpError
from simpleim.msrp import make_request, new_ident
from simpleim.msrp.uri import parse_path
from simpleim.sdp import (
    Capabilities,
    LocalEndpoint,
    MediaDescription,
    SessionDescription,
    StreamOutcome,
    Timing,
    answer_offer,
    parse_sdp,
)
from simpleim.sdp.file_transfer import FileDescription, FileSelector
from simpleim.sip.message import SipMessage
from simpleim.sip.multipart import MultipartPart, parse_multipart
from simpleim.transport.msrp import EndpointSession, MsrpEndpoint

__all__ = ["local_endpoint", "answer_streams", "sdp_of", "connect_stream", "body_parts",
           "settle_closing"]


def local_endpoint(ep: MsrpEndpoint, stream: EndpointSession) -> LocalEndpoint:
    host = ep.advertise_host
    return LocalEndpoint(address=host, port=ep.port,
                         path=tuple(str(u) for u in stream.local_path),
                         addrtype="IP6" if ":" in host else "IP4")


def body_parts(msg: SipMessage) -> list[MultipartPart]:
    """The parts of a multipart body (RFC 5621), or the body as one part."""
    ctype = msg.headers.get("Content-Type") or ""
    if ctype.split(";", 1)[0].strip().lower().startswith("multipart/"):
        boundary = ""
        for param in ctype.split(";")[1:]:
            k, _, v = param.strip().partition("=")
            if k.lower() == "boundary":
                boundary = v.strip().strip('"')
        return parse_multipart(msg.body, boundary)
    return [MultipartPart.create(ctype, msg.body)]


def sdp_of(msg: SipMessage) -> SessionDescription | None:
    """The SDP of a message, also inside multipart/mixed (Mercuro, CPM FT)."""
    for part in body_parts(msg):
        mt = (part.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if mt == "application/sdp":
            return parse_sdp(part.body)
    return None


FilePolicy = Callable[[FileDescription], "bool | FileDescription"]
PullSource = Callable[[FileSelector], "FileDescription | None"]


def answer_streams(
    offer: SessionDescription,
    new_stream: Callable[[int], tuple[LocalEndpoint, EndpointSession]],
    caps: Capabilities,
    *,
    file_policy: FilePolicy | None = None,
    pull_source: PullSource | None = None,
) -> tuple[SessionDescription, list[StreamOutcome], dict[int, EndpointSession]]:
    """Answer each m-line on its own (own MSRP session), then join the lines (RFC 3264 §6:
    same number and order of m-lines; rejected ones with port 0)."""
    lines: list[MediaDescription] = []
    outcomes: list[StreamOutcome] = []
    streams: dict[int, EndpointSession] = {}
    first_local: LocalEndpoint | None = None
    for index, media in enumerate(offer.media):
        local, stream = new_stream(index)
        first_local = first_local or local
        sub = replace(offer, media=(media,))
        try:
            ans = answer_offer(sub, local, caps, file_policy=file_policy,
                               pull_source=pull_source)
        except SdpError as exc:
            stream.close()
            lines.append(MediaDescription(media=media.media, port=0, proto=media.proto,
                                          formats=media.formats or ("*",)))
            outcomes.append(StreamOutcome(index, False, exc.reason))
            continue
        lines.append(ans.sdp.media[0])
        outcomes.append(replace(ans.streams[0], index=index))
        streams[index] = stream
    if not streams or first_local is None:
        reason = next((o.reason for o in outcomes if o.reason), "no acceptable media")
        # RFC 3264 §6 / OMA §9.2.1.2: nothing acceptable -> 488.
        raise SdpError(f"no acceptable media: {reason}", status=488, where="m=")
    sdp = SessionDescription(origin=first_local.origin, session_name="-",
                             connection=first_local.connection, times=(Timing(0, 0),),
                             media=tuple(lines))
    return sdp, outcomes, streams


async def connect_stream(ep: MsrpEndpoint, stream: EndpointSession, remote_path: tuple[str, ...],
                         we_connect: bool, *, timeout: float = 10.0) -> None:
    """Set the peer's path and connect (active) or wait for the peer's first SEND (passive,
    RFC 4975 §5.4 / RFC 6135)."""
    stream.set_remote_path(parse_path(" ".join(remote_path)))
    if stream.core.relay_path:
        # RFC 4976 §5: the AUTH connection to our relay is the session's connection.  The
        # active side sends the binding empty SEND (RFC 4975 §5.4) through it so that the
        # relay opens the next hop to a peer that waits for it.
        await stream.wait_bound(timeout)
        if we_connect and stream.runner is not None:
            req = make_request(new_ident(), "SEND", stream.core.to_path,
                               [stream.core.local_uri],
                               [("Message-ID", new_ident()), ("Success-Report", "no"),
                                ("Failure-Report", "yes")])
            async with asyncio.timeout(timeout):
                resp = await stream.runner.request(req)
            if resp is None or resp.status_code != 200:
                raise SdpError(f"MSRP relay did not take the binding SEND "
                               f"({resp.status_code if resp else 'no answer'})", status=488)
        return
    if we_connect:
        await settle_closing(ep)
        await ep.connect(stream, timeout=timeout)
    else:
        await stream.wait_bound(timeout)


async def settle_closing(ep: MsrpEndpoint, timeout: float = 1.0) -> None:
    """Adapter: MsrpEndpoint reuses its connection to a host:port (RFC 4975 §5.4) even while
    that connection is being closed (its last session just ended); a new session bound to
    it would then never bind.  Wait until such connections are really gone."""
    closing = [r for r in list(ep._runners)
               if r.transport is not None and r.transport.is_closing()
               and not r.closed.is_set()]
    for r in closing:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await r.closed.wait()
