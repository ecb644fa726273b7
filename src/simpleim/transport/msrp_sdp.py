"""MSRP media of an INVITE session, for the client and the server's user agent alike: one
:class:`EndpointSession` per ``m=message`` line, each with its own MSRP URI in the SDP answer
(RFC 4975 §8.1: the session-id in a=path identifies the stream); the SDP of a (multipart)
SIP body; connecting a negotiated stream (RFC 4975 §5.4, RFC 6135, RFC 6714)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from simpleim.errors import SdpError
from simpleim.msrp import make_request, new_ident
from simpleim.msrp.setup import ConnectionPlan
from simpleim.msrp.uri import parse_path
from simpleim.sdp import (
    Capabilities,
    LocalEndpoint,
    SessionDescription,
    StreamOutcome,
    answer_offer,
    parse_sdp,
)
from simpleim.sdp.file_transfer import FileDescription, FileSelector
from simpleim.sip.message import SipMessage
from simpleim.sip.multipart import MultipartPart, parse_multipart
from simpleim.transport.msrp import EndpointSession, MsrpEndpoint

__all__ = ["local_endpoint", "answer_streams", "sdp_of", "connect_stream", "body_parts"]


def local_endpoint(ep: MsrpEndpoint, stream: EndpointSession) -> LocalEndpoint:
    host = ep.advertise_host
    # RFC 4975 §8.1: msrps URIs go with the TCP/TLS/MSRP m-line protocol.
    proto = "TCP/TLS/MSRP" if ep.scheme == "msrps" else "TCP/MSRP"
    return LocalEndpoint(address=host, port=ep.port,
                         path=tuple(str(u) for u in stream.local_path),
                         addrtype="IP6" if ":" in host else "IP4", proto=proto)


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
    """Answer the offer (RFC 3264 §6: same number and order of m-lines; rejected ones with
    port 0); every m-line gets its own MSRP session (``LocalEndpoint.stream_paths``).  The
    sessions of rejected lines are closed."""
    pairs = [new_stream(i) for i in range(len(offer.media))]
    if not pairs:
        raise SdpError("offer has no media", status=488, where="m=")
    first_local = pairs[0][0]
    local = replace(first_local, stream_paths=tuple(lo.path for lo, _s in pairs))
    try:
        ans = answer_offer(offer, local, caps, file_policy=file_policy,
                           pull_source=pull_source)
    except SdpError:
        for _lo, stream in pairs:
            stream.close()
        raise
    streams: dict[int, EndpointSession] = {}
    for o in ans.streams:
        if o.accepted:
            streams[o.index] = pairs[o.index][1]
        else:
            pairs[o.index][1].close()
    return ans.sdp, list(ans.streams), streams


async def connect_stream(ep: MsrpEndpoint, stream: EndpointSession, remote_path: tuple[str, ...],
                         we_connect: bool, *, timeout: float = 10.0,
                         cema_to: tuple[str, int] | None = None) -> None:
    """Set the peer's path and connect (active) or wait for the peer's first SEND (passive,
    RFC 4975 §5.4 / RFC 6135).  ``cema_to``: the SDP c=/m= address to connect to when
    msrp-cema was negotiated (RFC 6714 §4.1)."""
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
        plan = None
        if cema_to is not None:
            first = stream.core.to_path[0]
            plan = ConnectionPlan(True, cema_to[0], cema_to[1], first.secure, "active",
                                  "RFC 6714: CEMA, SDP c=/m= address")
        await ep.connect(stream, plan, timeout=timeout)
    else:
        await stream.wait_bound(timeout)


