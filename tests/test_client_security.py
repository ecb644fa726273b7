"""Issue 7, client side: each test reproduces an attack on the agent/client (failed before its
fix)."""

from __future__ import annotations

import json
from pathlib import Path

from simpleim.cli.client_run import event_json, format_event
from simpleim.client.events import MessageEvent, SessionEvent
from simpleim.sip.message import parse_message


def test_agent_json_stays_valid_utf8_with_invalid_bytes_from_the_peer() -> None:
    """Item 15: a Call-ID with invalid UTF-8 reached `agent --json` as lone surrogates and the
    line written was not valid UTF-8 (jq / json.loads failed)."""
    raw = (b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n"
           b"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:bob@example.test>\r\n"
           b"Call-ID: \xff\xfe\xc3bad@192.0.2.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
           b"Content-Length: 0\r\n\r\n")
    call_id = parse_message(raw).headers.get("Call-ID")
    assert call_id is not None
    ev = SessionEvent(call_id, "sip:alice@example.test", "invited")
    line = event_json(ev)
    decoded = json.loads(line.encode("utf-8"))      # strict UTF-8, then JSON
    assert decoded["session_id"] == "\\xff\\xfe\\xc3bad@192.0.2.1"
    text = format_event(MessageEvent("sip:\udcffx@example.test", "hi \udce2", "text/plain",
                                     "pager", session_id=call_id))
    text.encode("utf-8")
    # valid text is untouched
    assert json.loads(event_json(SessionEvent("abc", "sip:ü@x", "invited")))["peer"] == "sip:ü@x"


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def test_thumbnail_of_a_decompression_bomb_is_skipped(tmp_path: Path) -> None:
    """Item 16: send-file on a 400 Mpx PNG crashed with an uncaught DecompressionBombError."""
    from simpleim.client.thumbnails import make_thumbnail

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(20_000, 20_000))       # 400 Mpx
    assert make_thumbnail(bomb) is None
    big = tmp_path / "big.png"
    big.write_bytes(_png_header(12_000, 12_000))        # 144 Mpx: not decoded either
    assert make_thumbnail(big) is None
    small = tmp_path / "small.png"
    from PIL import Image
    Image.new("RGB", (300, 200), (200, 10, 10)).save(small)
    thumb = make_thumbnail(small)
    assert thumb is not None and thumb.startswith(b"\xff\xd8\xff")


def test_bidi_controls_are_stripped_from_received_file_names() -> None:
    """Item 18: U+202E made 'invoice\\u202egpj.exe' display as 'invoiceexe.jpg'."""
    from simpleim.client.downloads import sanitize_name

    assert sanitize_name("invoice\u202egpj.exe") == "invoicegpj.exe"
    for ch in "\u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u061c\u200b\ufeff":
        assert ch not in sanitize_name(f"a{ch}b.txt")
    assert sanitize_name("résumé.pdf") == "résumé.pdf"


def _forged_message(to_port: int, sender: str, text: str) -> bytes:
    body = text.encode()
    return (f"MESSAGE sip:bob@example.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKforged{to_port}\r\n"
            f"From: <{sender}>;tag=forged\r\nTo: <sip:bob@example.test>\r\n"
            f"Call-ID: forged-{to_port}@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def test_agent_refuses_requests_that_bypass_the_proxy(tmp_path: Path) -> None:
    """Item 17: a MESSAGE sent straight to the agent's port (no proxy, no authentication)
    was shown as coming from alice."""
    import socket

    from client_helpers import pair, wait_event

    async with pair(tmp_path) as (alice, bob):
        assert bob.local is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.sendto(_forged_message(bob.local.port, "sip:alice@example.test", "forged"),
                     ("127.0.0.1", bob.local.port))
        trust = bob.endpoint.trust  # type: ignore[attr-defined]
        await _until(lambda: trust.refused == 1)
        await alice.pager.send("bob", "real")
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == "real"


async def test_trusted_sources_star_accepts_direct_requests(tmp_path: Path) -> None:
    import socket

    from client_helpers import pair, wait_event

    async with pair(tmp_path, bob={"trusted_sources": ("*",)}) as (_alice, bob):
        assert bob.local is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.sendto(_forged_message(bob.local.port, "sip:peer@elsewhere.test", "direct"),
                     ("127.0.0.1", bob.local.port))
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == "direct"


async def _until(pred: object, timeout: float = 5.0) -> None:
    from waiting import wait_until

    await wait_until(pred, timeout)  # type: ignore[arg-type]


BAD_COMPOSING = (b'<?xml version="1.0" encoding="x-no-such-charset"?>\n<isComposing '
                 b'xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>'
                 b"</isComposing>")


async def test_cpim_from_does_not_override_the_sip_identity(tmp_path: Path) -> None:
    """Item 5: a CPIM From of carol inside alice's MESSAGE made bob show carol and send the
    delivery IMDN to carol.  Now bob shows alice (the authenticated identity), flags the
    claim, and the IMDN goes to alice."""
    from client_helpers import pair, wait_event
    from simpleim.client.events import ImdnEvent
    from simpleim.client.pager import build_im
    from simpleim.content.cpim import CpimDateTime

    async with pair(tmp_path) as (alice, bob):
        forged = build_im(sender="sip:carol@example.test", recipient="sip:bob@example.test",
                          body=b"trust me", content_type="text/plain", message_id="forged1",
                          imdn=("positive-delivery",),
                          date_time=CpimDateTime("2026-12-04T21:00:00Z"))
        status = await alice.pager.send_raw("bob", forged.to_bytes(), "message/cpim")
        assert status == 200
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent)
        assert ev.sender == "sip:alice@example.test"
        assert ev.claimed_sender == "sip:carol@example.test"
        assert "unverified" in format_event(ev)
        imdn = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(imdn, ImdnEvent) and imdn.message_id == "forged1"


async def test_pager_message_with_bad_xml_encoding_gets_a_response(tmp_path: Path) -> None:
    """Item 19: an is-composing with an unknown XML encoding raised LookupError in the
    MESSAGE handler: no response at all."""
    from client_helpers import pair, wait_event
    from simpleim.client.events import ErrorEvent

    async with pair(tmp_path) as (alice, bob):
        status = await alice.pager.send_raw("bob", BAD_COMPOSING,
                                            "application/im-iscomposing+xml")
        assert status == 400
        err = await wait_event(bob, lambda e: isinstance(e, ErrorEvent))
        assert isinstance(err, ErrorEvent) and "x-no-such-charset" in err.reason


async def test_chat_receive_loop_survives_a_bad_is_composing(tmp_path: Path) -> None:
    """Item 19: one bad is-composing killed the chat's receive loop; later messages were
    never shown."""
    from client_helpers import pair, wait_event
    from simpleim.client.events import ErrorEvent

    async with pair(tmp_path) as (alice, bob):
        chat = await alice.chats.start("bob")
        await wait_event(bob, lambda e: isinstance(e, SessionEvent) and e.state == "established")
        await chat.stream.send(BAD_COMPOSING, "application/im-iscomposing+xml")
        err = await wait_event(bob, lambda e: isinstance(e, ErrorEvent))
        assert isinstance(err, ErrorEvent) and err.status == 400
        await chat.send("still here")
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == "still here"


import pytest  # noqa: E402


async def test_file_limit_holds_on_received_bytes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 9: an offer declaring size:10 delivered 150 MiB; the limit only looked at the
    offer.  Now the receiver stops at the declared size.  (An offer without size is refused
    by our own sender; the core test of ``receive_with(max_size=)`` covers that case.)"""
    from dataclasses import replace

    import simpleim.client.filetransfer as ft
    from client_helpers import pair, wait_event
    from simpleim.client.events import FileEvent

    declared = 10
    real_describe, real_send = ft.describe, ft.send_stream

    def lying_describe(path: Path, **kw: object) -> object:
        d = real_describe(path, **kw)  # type: ignore[arg-type]
        return replace(d, selector=replace(d.selector, size=declared, hashes=()))

    async def send_everything(session: object, stream: object, path: Path, ctype: str,
                              offset: int, _size: int, *a: object, **kw: object) -> None:
        await real_send(session, stream, path, ctype, offset,  # type: ignore[arg-type]
                        path.stat().st_size, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ft, "describe", lying_describe)
    monkeypatch.setattr(ft, "send_stream", send_everything)
    src = tmp_path / "big.bin"
    src.write_bytes(b"A" * 50_000)
    async with pair(tmp_path) as (alice, bob):
        res = await alice.files.send("bob", [src], thumbnail=False)
        assert res[0].status == "failed"          # bob answered 413 (RFC 4975 §10.5)
        ev = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state in (
            "failed", "received"))
        assert isinstance(ev, FileEvent) and ev.state == "failed"
        limit = declared
        assert ev.transferred <= limit
        held = sum(p.stat().st_size for p in (tmp_path / "dl-bob").rglob("*") if p.is_file())
        assert held <= limit


def test_partial_files_expire_and_the_download_dir_is_bounded(tmp_path: Path) -> None:
    import os

    from simpleim.client.downloads import DownloadDir

    d = DownloadDir(tmp_path, partial_ttl=3600, max_bytes=10_000)
    old = d.partial_path("aaaa")
    old.write_bytes(b"x" * 3000)
    os.utime(old, (1_000_000, 1_000_000))
    fresh = d.partial_path("bbbb")
    fresh.write_bytes(b"y" * 2000)
    (tmp_path / "done.txt").write_bytes(b"z" * 1000)
    assert d.usage() == 6000 and d.room() == 4000
    assert d.expire_partials() == [old]
    assert not old.exists() and fresh.exists()
    assert d.room() == 7000


async def test_chat_session_refuses_a_message_above_the_memory_limit(tmp_path: Path) -> None:
    """Item 4 (client side): chat sessions had no size limit at all; the MSRP 413 now comes
    from the configured per-message limit and the session goes on."""
    from client_helpers import pair, wait_event
    from simpleim.client.session import SessionFailed

    async with pair(tmp_path, bob={"max_message_size": 4000}) as (alice, bob):
        chat = await alice.chats.start("bob")
        await wait_event(bob, lambda e: isinstance(e, SessionEvent) and e.state == "established")
        with pytest.raises(SessionFailed) as info:
            await chat.send("x" * 10_000)
        assert info.value.status == 413
        await chat.send("small")
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == "small"
