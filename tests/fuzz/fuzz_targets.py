"""Fuzz targets shared by the CI fuzz tests (tests/fuzz/test_fuzz_short.py, hypothesis) and the
long campaign (benchmarks/fuzz.py): one entry per parser, its seed corpus of real traffic
(the vectors under tests/vectors, /work/shared/testdata when present, and wire bytes recorded
from our own MSRP and SIP stacks), the function that parses one input and reads every typed
accessor, and the one error family the parser may raise.  Anything else is a crash.

A fast byte mutator (:func:`mutate`) turns seeds into inputs: bit flips, interesting bytes and
tokens (CRLF, separators, huge numbers, unknown XML encodings, bidi controls), deletions,
duplications, splices of two seeds, truncations.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simpleim.content.conference_info import apply_notification, parse_conference_info
from simpleim.content.cpim import parse_cpim
from simpleim.content.encoding import decode_body
from simpleim.content.imdn import DispositionRequest, parse_imdn
from simpleim.content.iscomposing import parse_iscomposing
from simpleim.content.resource_lists import parse_resource_lists
from simpleim.content.xml import parse_xml
from simpleim.errors import (
    ContentError,
    MsrpParseError,
    ProtocolError,
    SdpError,
    SipParseError,
)
from simpleim.msrp import MsrpConnection, MsrpSession, MsrpUri
from simpleim.msrp.message import MsrpRequest
from simpleim.msrp.parser import MessageHead, MsrpLimits, MsrpParser
from simpleim.sdp.file_transfer import FileSelector
from simpleim.sdp.model import parse_sdp
from simpleim.sdp.msrp import MsrpMedia, is_msrp_media
from simpleim.sdp.offer_answer import Capabilities, LocalEndpoint, answer_offer
from simpleim.sip import SipLimits, SipRequest, StreamFramer, parse_message, validate_message
from simpleim.sip.headers import Address, Via
from simpleim.sip.multipart import parse_multipart
from simpleim.sip.uri import parse_uri

__all__ = ["TARGETS", "Target", "ServerHarness", "mutate"]

TESTS = Path(__file__).resolve().parent.parent
VECTORS = TESTS / "vectors"
SHARED = TESTS.parent.parent / "shared" / "testdata"


def _files(sub: str, *, crlf: bool = False) -> list[bytes]:
    out: list[bytes] = []
    for root in (VECTORS, SHARED):
        d = root / sub
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.is_file() and p.suffix not in (".md", ".json"):
                data = p.read_bytes()
                if crlf and b"\r\n" not in data:
                    data = data.replace(b"\n", b"\r\n")
                out.append(data)
    return out


# ----------------------------------------------------------------------------- seeds
A = MsrpUri.parse("msrp://127.0.0.1:7777/alice1;tcp")
B = MsrpUri.parse("msrp://127.0.0.1:8888/bob22;tcp")


def _msrp_traffic() -> list[bytes]:
    """Wire bytes of a real exchange between two of our MSRP connections: bind, a chunked
    message with success report, IMDN/is-composing messages, responses and REPORTs."""
    sa = MsrpSession(A, [B], chunk_size=700)
    sb = MsrpSession(B, [A])
    ca = MsrpConnection()
    cb = MsrpConnection(resolver=lambda u: sb if u.session_id == "bob22" else None)
    ca.attach(sa, 0.0)
    sa.send(bytes(range(256)) * 8, "application/octet-stream", success_report=True)
    sa.send(b"Hello \xe2\x9c\x93", "text/plain")
    for ct, body in (("message/imdn+xml", _files("imdn")[:1]),
                     ("application/im-iscomposing+xml", [_iscomposing()])):
        for b in body:
            sa.send(b, ct)
    wire: list[bytes] = []
    for _ in range(50):
        ca.pump(0.0)
        ab = b"".join(ca.data_to_send())
        if ab:
            wire.append(ab)
            cb.receive_data(ab, 0.0)
        cb.pump(0.0)
        ba = b"".join(cb.data_to_send())
        if ba:
            wire.append(ba)
            ca.receive_data(ba, 0.0)
        if not ab and not ba:
            break
    stream = b"".join(wire)
    # single messages too: split on the end-lines
    msgs: list[bytes] = []
    start = 0
    while True:
        i = stream.find(b"\r\n-------", start)
        if i < 0:
            break
        j = stream.find(b"\r\n", i + 2)
        if j < 0:
            break
        msgs.append(stream[start: j + 2])
        start = j + 2
    return [stream, *msgs[:40]]


def _iscomposing() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<isComposing xmlns="urn:ietf:params:xml:'
            b'ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype>'
            b"<refresh>60</refresh><lastactive>2026-12-04T21:00:00Z</lastactive></isComposing>")


def _sip_head(method: str, ctype: str, body: bytes) -> bytes:
    return (f"{method} sip:bob@example.test SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
            "Max-Forwards: 70\r\nTo: <sip:bob@example.test>\r\n"
            "From: \"Alice\" <sip:alice@example.test>;tag=1928301774\r\n"
            "Call-ID: a84b4c76e66710@pc33.example.test\r\nCSeq: 314159 " + method + "\r\n"
            "Contact: <sip:alice@192.0.2.1:5060;transport=udp>;+sip.instance=\"<urn:uuid:1>\"\r\n"
            "P-Asserted-Identity: <sip:alice@example.test>\r\n"
            "Accept-Contact: *;+g.oma.sip-im;explicit\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def _sip_seeds() -> list[bytes]:
    seeds = _files("sip")
    for sdp in _files("sdp"):
        seeds.append(_sip_head("INVITE", "application/sdp", sdp))
    for cpim in _files("cpim"):
        seeds.append(_sip_head("MESSAGE", "message/cpim", cpim))
    rl = _files("resource-lists")
    if rl and _files("sdp"):
        body = (b"--bnd\r\nContent-Type: application/sdp\r\n\r\n" + _files("sdp")[0]
                + b"\r\n--bnd\r\nContent-Type: application/resource-lists+xml\r\n"
                b"Content-Disposition: recipient-list\r\n\r\n" + rl[0] + b"\r\n--bnd--\r\n")
        seeds.append(_sip_head("INVITE", "multipart/mixed;boundary=bnd", body))
    return seeds


def _header_values(seeds: list[bytes], names: tuple[bytes, ...]) -> list[bytes]:
    out: list[bytes] = []
    for s in seeds:
        for line in s.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() in names:
                out.append(value.strip())
    return out or [b"<sip:alice@example.test>;tag=1"]


# ----------------------------------------------------------------------------- mutator
_INTERESTING = (b"\x00", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b" ", b"\t", b":", b";", b",",
                b"<", b">", b'"', b"\\", b"@", b"[", b"]", b"%", b"=", b"/", b"?", b"&", b"\xff",
                b"\xc3", b"\xe2\x80\xae", b"-1", b"0", b"4294967296", b"99999999999999999999",
                b"*", b"$", b"#", b"+", b"-------", b"/0", b"1-0/0",
                b'<?xml version="1.0" encoding="x-no-such"?>', b"<!DOCTYPE a [<!ENTITY e 'x'>]>",
                b"&e;", b"<a>", b"</a>", b"xmlns=", b"state=\"deleted\"", b"%00", b"%zz",
                b"sip:", b"msrp://", b"tel:", b"[::1]", b"\xf0\x9f\x98\x80", b"=?utf-8?q?x?=")


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One input: a seed with 1-8 random edits (or a splice of two seeds)."""
    buf = bytearray(rng.choice(seeds))
    rnd = rng.random
    for _ in range(1 + int(rnd() * rnd() * 8)):
        n = len(buf)
        op = int(rnd() * 9)
        pos = int(rnd() * (n + 1))
        if op == 0 and n:                       # bit flip
            p = min(pos, n - 1)
            buf[p] ^= 1 << int(rnd() * 8)
        elif op == 1 and n:                     # random byte
            buf[min(pos, n - 1)] = int(rnd() * 256)
        elif op == 2:                           # interesting token
            buf[pos:pos] = _INTERESTING[int(rnd() * len(_INTERESTING))]
        elif op == 3:                           # replace with interesting token
            tok = _INTERESTING[int(rnd() * len(_INTERESTING))]
            buf[pos: pos + 1 + int(rnd() * 6)] = tok
        elif op == 4 and n:                     # delete a run
            del buf[pos: pos + 1 + int(rnd() * 32)]
        elif op == 5 and n:                     # duplicate a run
            ln = 1 + int(rnd() * 64)
            buf[pos:pos] = buf[pos: pos + ln] * (1 + int(rnd() * 3))
        elif op == 6:                           # splice another seed
            other = rng.choice(seeds)
            q = int(rnd() * (len(other) + 1))
            buf[pos:] = other[q:]
        elif op == 7 and n:                     # truncate
            del buf[pos:]
        elif op == 8:                           # digits -> a big/odd number
            i = buf.find(b"0123456789"[int(rnd() * 10)], pos)
            if i >= 0:
                buf[i:i + 1] = rng.choice((b"0", b"-1", b"999999999999", b"65536",
                                           b"2147483648", b"1e9"))
    return bytes(buf)


# ----------------------------------------------------------------------------- targets
SIP_LIMITS = SipLimits(max_message_size=8192, max_headers=64, max_header_line=2048,
                       max_body=4096)
_SIP_ATTRS = ("via", "top_via", "from_addr", "to_addr", "call_id", "cseq", "contacts",
              "max_forwards", "content_type", "content_length", "route", "record_route",
              "path", "p_asserted_identity", "p_preferred_identity", "referred_by", "supported",
              "require", "proxy_require", "allow", "privacy", "request_disposition",
              "accept_contact", "reject_contact", "session_expires", "min_se", "expires",
              "media_type", "contact_star")


def _sip_message(data: bytes) -> None:
    msg = parse_message(data, SIP_LIMITS)
    for attr in _SIP_ATTRS:
        try:
            getattr(msg, attr)
        except SipParseError:
            pass
    if isinstance(msg, SipRequest):
        try:
            msg.uri  # noqa: B018 - the accessor parses
        except SipParseError:
            pass
    try:
        validate_message(msg)
    except SipParseError:
        pass
    msg.to_bytes()


def _pieces(data: bytes) -> list[bytes]:
    """The input split the way a socket might deliver it (derived from the input itself,
    so a crash reproduces from its saved bytes): whole, or cut in 2-5 pieces, or per byte for
    short inputs."""
    n = len(data)
    k = (data[-1] if data else 0) % 8
    if k < 4 or n < 2:
        return [data]
    if k == 7 and n < 300:
        return [data[i: i + 1] for i in range(n)]
    cuts = sorted({(n * (j * 37 + (data[j % n]))) // 300 % n for j in range(k - 2)})
    out, prev = [], 0
    for c in cuts:
        out.append(data[prev:c])
        prev = c
    out.append(data[prev:])
    return out


def _sip_framing(data: bytes) -> None:
    framer = StreamFramer(SIP_LIMITS)
    for piece in _pieces(data):
        for item in framer.feed(piece):
            if isinstance(item, bytes):
                try:
                    parse_message(item, SIP_LIMITS)
                except SipParseError:
                    pass


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _sip_uri(data: bytes) -> None:
    uri = parse_uri(_text(data))
    str(uri)


def _sip_headers(data: bytes) -> None:
    text = _text(data)
    try:
        a = Address.parse(text)
        str(a)
    except SipParseError:
        pass
    v = Via.parse(text)
    str(v)


_LOCAL = LocalEndpoint("127.0.0.1", 2855, ("msrp://127.0.0.1:2855/abcd;tcp",),
                       path_factory=lambda i: (f"msrp://127.0.0.1:2855/s{i}xyz;tcp",))


def _sdp(data: bytes) -> None:
    sd = parse_sdp(data)
    for m in sd.media:
        if is_msrp_media(m):
            try:
                MsrpMedia.from_media(m)
                fs = m.get("file-selector")
                if fs is not None:
                    FileSelector.parse(fs)
            except SdpError:
                pass
    answer_offer(sd, _LOCAL, Capabilities())
    sd.to_bytes()


def _msrp(data: bytes) -> None:
    parser = MsrpParser(MsrpLimits(max_line=1024, max_head=4096, max_headers=32))
    for piece in _pieces(data):
        for ev in parser.feed(piece):
            if isinstance(ev, MessageHead):
                m = ev.message
                if isinstance(m, MsrpRequest):
                    for attr in ("message_id", "byte_range", "status", "failure_report",
                                 "success_report", "content_type", "to_path", "from_path"):
                        try:
                            getattr(m, attr)
                        except MsrpParseError:
                            pass
        if parser.error is not None:
            raise parser.error


class _MsrpCore:
    """A receiving connection + session: the whole MSRP receive path (reassembly, limits,
    responses, reports) on mutated traffic."""

    def run(self, data: bytes) -> None:
        sb = MsrpSession(B, [A])
        cb = MsrpConnection(resolver=lambda u: sb if u.session_id == "bob22" else None)
        sa = MsrpSession(A, [B])
        sa.send(b"x" * 10, "text/plain", success_report=True)
        for piece in _pieces(data):
            cb.receive_data(piece, 0.0)
            cb.pump(0.0)
            cb.data_to_send()
            if cb.closed:
                break
        cb.connection_lost()


def _cpim(data: bytes) -> None:
    m = parse_cpim(data)
    for attr in ("namespaces", "from_addr", "to_addrs", "cc_addrs", "datetime", "subjects"):
        try:
            getattr(m, attr)
        except ContentError:
            pass
    try:
        DispositionRequest.parse(m.get("Disposition-Notification", "urn:ietf:params:imdn")
                                 or "positive-delivery")
    except ContentError:
        pass


_BASE: list[object] = []


def _conference(data: bytes) -> None:
    ci = parse_conference_info(data)
    if not _BASE:
        _BASE.append(parse_conference_info(_files("conference-info")[0]))
    base = _BASE[0]
    assert isinstance(base, type(ci))
    try:
        apply_notification(base, ci)
    except ContentError:
        pass
    ci.to_bytes()


def _deflate(data: bytes) -> None:
    coding = ("deflate", "gzip", "deflate, gzip", "identity", "br")[len(data) % 5]
    decode_body(data, coding, max_size=64 * 1024)


def _deflate_seeds() -> list[bytes]:
    out = []
    for body in _files("imdn") + _files("cpim") + [_iscomposing(), b"x" * 5000]:
        out.append(zlib.compress(body))
        c = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        out.append(c.compress(body) + c.flush())
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        out.append(c.compress(body) + c.flush())
    return out


def _multipart(data: bytes) -> None:
    for part in parse_multipart(data, "bnd"):
        part.content_type  # noqa: B018
        part.media_type  # noqa: B018


def _poc_like_seeds() -> list[bytes]:
    """XML shaped like the OMA PoC/XDM documents the spec references (settings, groups)."""
    return [
        b'<?xml version="1.0" encoding="UTF-8"?><im-settings xmlns="urn:oma:xml:im:settings">'
        b'<answer-mode>auto</answer-mode><visibility>true</visibility></im-settings>',
        b'<?xml version="1.0"?><group xmlns="urn:oma:xml:poc:list-service"><list-service '
        b'uri="sip:grp@example.test"><display-name>g</display-name><list><entry '
        b'uri="sip:a@example.test"/></list><max-participant-count>10</max-participant-count>'
        b"</list-service></group>",
    ]


@dataclass(frozen=True)
class Target:
    name: str
    seeds: Callable[[], list[bytes]]
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]


def _msrp_core_run(data: bytes) -> None:
    _MsrpCore().run(data)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("sip-message", _sip_seeds, _sip_message, (SipParseError,)),
    Target("sip-framing", lambda: [b"".join(_sip_seeds()[:6]), *_sip_seeds()], _sip_framing,
           (SipParseError,)),
    Target("sip-uri", lambda: [v.strip(b"<>") for v in _header_values(
        _sip_seeds(), (b"to", b"from", b"contact", b"route", b"t", b"f", b"m"))]
        + [b"sip:alice@example.test;transport=tcp?subject=hi",
           b"tel:+1-201-555-0123;phone-context=x"],
        _sip_uri, (SipParseError,)),
    Target("sip-headers", lambda: _header_values(
        _sip_seeds(), (b"via", b"v", b"to", b"from", b"contact", b"route", b"record-route")),
        _sip_headers, (SipParseError,)),
    Target("sip-multipart", lambda: [s.partition(b"\r\n\r\n")[2] for s in _sip_seeds()
                                     if b"boundary=bnd" in s], _multipart, (SipParseError,
                                                                           ContentError)),
    Target("sdp", lambda: _files("sdp"), _sdp, (SdpError,)),
    Target("msrp-parser", lambda: _files("msrp", crlf=True) + _msrp_traffic(), _msrp,
           (MsrpParseError,)),
    Target("msrp-core", lambda: _files("msrp", crlf=True) + _msrp_traffic(), _msrp_core_run,
           ()),
    Target("cpim", lambda: _files("cpim"), _cpim, (ContentError,)),
    Target("imdn", lambda: _files("imdn"), lambda d: parse_imdn(d) and None, (ContentError,)),
    Target("iscomposing", lambda: [_iscomposing()], lambda d: parse_iscomposing(d) and None,
           (ContentError,)),
    Target("conference-info", lambda: _files("conference-info"), _conference, (ContentError,)),
    Target("resource-lists", lambda: _files("resource-lists"),
           lambda d: parse_resource_lists(d) and None, (ContentError,)),
    Target("deflate", _deflate_seeds, _deflate, (ContentError,)),
    Target("poc-xml", _poc_like_seeds, lambda d: parse_xml(d) and None, (ContentError,)),
)}

#: Every typed error: the short CI run accepts only the target's own family, and so does the
#: long runner; this is for reporting.
TYPED = (ProtocolError,)


# ----------------------------------------------------------------------------- server path
class ServerHarness:
    """One in-process ImServer (SQLite in memory, digest auth on, fast timers) fed through its
    datagram entry point; ``errors`` collects what must never happen: an exception out of the
    entry point or reaching the event loop, and ERROR log records."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._handler: logging.Handler | None = None

    async def __aenter__(self) -> ServerHarness:
        from simpleim.server.app import ImServer
        from simpleim.server.config import ServerConfig
        from simpleim.store import open_store
        from simpleim.timers import Timers
        from simpleim.transport.sip_addr import ListenSpec, TransportAddr

        errors = self.errors

        class _Errors(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.ERROR:
                    errors.append(f"log {record.levelname}: {record.getMessage()[:300]}")

        self._handler = _Errors()
        logging.getLogger().addHandler(self._handler)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _l, ctx: errors.append(
            "loop: " + "".join(traceback.format_exception(ctx["exception"]))[-600:]
            if ctx.get("exception") else f"loop: {ctx.get('message')}"))
        self.store = await open_store("sqlite://:memory:")
        await self.store.add_user("alice", "example.test", "alicepw")
        await self.store.add_user("bob", "example.test", "bobpw")
        cfg = ServerConfig(domain="example.test", listen=(ListenSpec("udp", "127.0.0.1", 0),),
                           db_url="sqlite://:memory:", auth=True,
                           timers=Timers(t1=0.01, t2=0.04, t4=0.05, timer_d_unreliable=0.05,
                                         timer_c=0.5))
        self.server = ImServer(cfg, self.store)
        await self.server.start()
        self.server.endpoint.net.send = lambda *a, **k: None  # type: ignore[method-assign]
        self.local = self.server.endpoint.listeners[0]
        self.source = TransportAddr("udp", "192.0.2.9", 5060)
        return self

    async def feed(self, data: bytes) -> str | None:
        """One datagram; returns the first new error it caused, if any."""
        before = len(self.errors)
        try:
            self.server.endpoint._on_message(data, self.source, self.local)
        except Exception as exc:  # noqa: BLE001 - the entry point must not raise anything
            self.errors.append("raised: " + "".join(traceback.format_exception(exc))[-600:])
        for _ in range(4):
            await asyncio.sleep(0)
        return self.errors[before] if len(self.errors) > before else None

    async def drain(self) -> None:
        for _ in range(200):
            if not self.server._tasks:
                return
            await asyncio.sleep(0)

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()
        await self.store.close()
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
