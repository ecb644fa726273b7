"""Issue 7 item 19: robustness of the cores against foreign material (each test failed before
its fix): XML declarations with unknown encodings, partial conference-info updates."""

from __future__ import annotations

from pathlib import Path

import pytest

from simpleim.content.conference_info import apply_notification, parse_conference_info
from simpleim.content.imdn import parse_imdn
from simpleim.content.iscomposing import parse_iscomposing
from simpleim.content.resource_lists import parse_resource_lists
from simpleim.content.xml import parse_xml
from simpleim.errors import ContentError

FULL = (Path(__file__).parent / "vectors" / "conference-info" / "rfc4575-full.xml").read_bytes()
NS = 'xmlns="urn:ietf:params:xml:ns:conference-info"'
BAD_DECL = b'<?xml version="1.0" encoding="x-no-such-charset"?>'


@pytest.mark.parametrize("parse", [parse_xml, parse_imdn, parse_iscomposing,
                                   parse_conference_info, parse_resource_lists])
def test_unknown_xml_encoding_is_a_content_error(parse: object) -> None:
    """Was a bare LookupError from every XML body parser."""
    with pytest.raises(ContentError) as info:
        parse(BAD_DECL + b"<a/>")  # type: ignore[operator]
    assert info.value.status == 400
    assert "x-no-such-charset" in info.value.reason


def _partial(version: int, users: str, users_attr: str = "") -> bytes:
    return (f'<conference-info {NS} entity="sips:conf233@example.com" state="partial" '
            f'version="{version}"><users{users_attr}>{users}</users>'
            f"</conference-info>").encode()


def test_partial_users_without_state_is_a_partial_update() -> None:
    """A partial document whose <users> has no state attribute used to replace the list."""
    full = parse_conference_info(FULL)
    before = {u.entity for u in full.users}
    assert len(before) >= 2
    add = _partial(2, '<user entity="sip:carol@example.com"><display-text>Carol</display-text>'
                      "</user>")
    s2 = apply_notification(full, parse_conference_info(add))
    assert {u.entity for u in s2.users} == before | {"sip:carol@example.com"}


def test_deleted_user_is_removed_whatever_the_users_state() -> None:
    full = parse_conference_info(FULL)
    gone = _partial(2, '<user entity="sip:alice@example.com" state="deleted"/>')
    s2 = apply_notification(full, parse_conference_info(gone))
    assert s2.user("sip:alice@example.com") is None
    assert s2.user("sip:bob@example.com") is not None
    # explicit state="full" on <users> replaces the list, but a deleted user is not listed
    repl = _partial(3, '<user entity="sip:bob@example.com" state="deleted"/>'
                       '<user entity="sip:dan@example.com"/>', ' state="full"')
    s3 = apply_notification(s2, parse_conference_info(repl))
    assert [u.entity for u in s3.users] == ["sip:dan@example.com"]


# --------------------------------------------------------------------------- MSRP
from simpleim.errors import MsrpParseError  # noqa: E402
from simpleim.msrp import (  # noqa: E402
    ConnectionFailed,
    MessageDelivered,
    MessageReceived,
    MsrpConnection,
    MsrpSession,
    MsrpUri,
    ReceiveLimits,
    RequestRejected,
)
from simpleim.msrp.parser import MessageEnd, MessageHead, MsrpParser, parse_stream  # noqa: E402

A = MsrpUri.parse("msrp://127.0.0.1:7777/alice1;tcp")
B = MsrpUri.parse("msrp://127.0.0.1:8888/bob22;tcp")


def _send(tid: str, mid: str, byte_range: str | None, body: bytes | None,
          ct: str | None = "text/plain", flag: str = "$", extra: str = "") -> bytes:
    head = f"MSRP {tid} SEND\r\nTo-Path: {B}\r\nFrom-Path: {A}\r\nMessage-ID: {mid}\r\n"
    if byte_range is not None:
        head += f"Byte-Range: {byte_range}\r\n"
    head += extra
    if ct is not None:
        head += f"Content-Type: {ct}\r\n"
    out = head.encode()
    if body is not None:
        out += b"\r\n" + body + b"\r\n"
    return out + f"-------{tid}{flag}\r\n".encode()


def _bob(**kw: object) -> tuple[MsrpConnection, MsrpSession]:
    sb = MsrpSession(B, [A], **kw)  # type: ignore[arg-type]
    cb = MsrpConnection(resolver=lambda u: sb if u.session_id == "bob22" else None)
    return cb, sb


def _statuses(cb: MsrpConnection) -> list[int]:
    out = b"".join(cb.data_to_send())
    return [int(line.split()[2]) for line in out.split(b"\r\n")
            if line.startswith(b"MSRP ") and line.split()[2].isdigit()]


def test_byte_range_bomb_allocates_nothing() -> None:
    """Item 4: 10 bytes claiming Byte-Range 1999999991-2000000000/2000000000 took ~2 GB."""
    cb, sb = _bob()
    bomb = _send("tid001", "msg1xx", "1999999991-2000000000/2000000000", b"0123456789")
    ev = cb.receive_data(bomb, 0.0)
    assert _statuses(cb) == [413]
    assert [type(e) for e in ev if isinstance(e, RequestRejected)] == [RequestRejected]
    assert sb.reassembler.held == 0 and sb.reassembler.in_progress == 0
    # the same claim without a total (`*`) and with a far start: refused before any data
    ev = cb.receive_data(_send("tid002", "msg2xx", "1999999991-*/*", b"0123456789", flag="+"), 0.0)
    assert _statuses(cb) == [413] and sb.reassembler.held == 0


def test_sparse_chunks_cost_what_arrived_and_session_budget_is_413() -> None:
    cb, sb = _bob(receive_limits=ReceiveLimits(max_memory_message=1 << 20, max_memory=4096))
    # a far chunk inside the per-message limit: memory follows the 10 bytes, not the offset
    far = _send("tid001", "msg1xx", "1000001-1000010/1000010", b"0123456789", flag="+")
    cb.receive_data(far, 0.0)
    assert _statuses(cb) == [200]
    assert sb.reassembler.held == 10
    sink = sb.reassembler._messages["msg1xx"].sink
    assert len(sink.buffer) == 0          # type: ignore[attr-defined]
    # past the per-session memory budget: 413, and that message is dropped
    cb.receive_data(_send("tid002", "msg2xx", "1-5000/5000", b"x" * 5000), 0.0)
    assert _statuses(cb) == [413]
    assert sb.reassembler.held == 10
    # data beyond the declared total is refused (stop at the declared size)
    cb.receive_data(_send("tid003", "msg3xx", "1-4/4", b"abcdefgh"), 0.0)
    assert _statuses(cb) == [413]


def test_a_max_size_and_file_limit_count_received_bytes() -> None:
    cb, sb = _bob(max_size=100)
    cb.receive_data(_send("tid001", "msg1xx", "1-*/*", b"y" * 150, flag="$"), 0.0)
    assert _statuses(cb) == [413]
    cb2, sb2 = _bob()
    sinks: list[object] = []

    def factory(_req: object) -> object:
        from simpleim.msrp import MemorySink
        s = MemorySink()
        sinks.append(s)
        return s

    sb2.set_sink_factory(factory, max_size=64)  # type: ignore[arg-type]
    cb2.receive_data(_send("tid001", "msg1xx", None, b"z" * 65, ct="application/octet-stream"), 0.0)
    assert _statuses(cb2) == [413]


def test_empty_binding_send_is_not_a_message() -> None:
    """Item 19: `Byte-Range: 1-0/0` binding SENDs surfaced as empty messages."""
    cb, sb = _bob()
    ev = cb.receive_data(_send("tid001", "msg1xx", "1-0/0", None, ct=None), 0.0)
    ev += cb.receive_data(_send("tid002", "msg2xx", "1-0/0", b"", ct="text/plain"), 0.0)
    assert _statuses(cb) == [200, 200]
    assert not [e for e in ev if isinstance(e, MessageReceived)]
    # a real message after it is received normally
    ev = cb.receive_data(_send("tid003", "msg3xx", "1-2/2", b"hi"), 0.0)
    (rx,) = [e for e in ev if isinstance(e, MessageReceived)]
    assert rx.message.sink.data == b"hi"


def test_valid_message_then_garbage_in_one_read() -> None:
    """Item 19: the valid message was lost and the error said `byte 0`."""
    good = _send("tid001", "msg1xx", "1-2/2", b"hi")
    data = good + b"GARBAGE\r\n\r\n"
    p = MsrpParser()
    events = p.feed(data)
    assert [type(e) for e in events if not isinstance(e, MessageEnd)][0] is MessageHead
    assert isinstance(events[-1], MessageEnd)
    assert p.error is not None and f"byte {len(good)}" in p.error.detail
    with pytest.raises(MsrpParseError):
        p.feed(b"more")
    with pytest.raises(MsrpParseError) as info:
        parse_stream(data)
    assert f"byte {len(good)}" in info.value.detail
    # through a connection: the message is delivered, then the connection fails
    cb, _sb = _bob()
    ev = cb.receive_data(data, 0.0)
    kinds = [type(e) for e in ev]
    assert MessageReceived in kinds and kinds[-1] is ConnectionFailed
    assert kinds.index(MessageReceived) < kinds.index(ConnectionFailed)
    # the offset is a stream offset: garbage after an earlier read
    p2 = MsrpParser()
    p2.feed(good)
    with pytest.raises(MsrpParseError) as info2:
        p2.feed(b"XXXX\r\n")
    assert f"byte {len(good)}" in info2.value.detail


def test_per_chunk_success_reports_are_aggregated() -> None:
    """Item 19: one success REPORT per chunk never marked the message delivered."""
    sa = MsrpSession(A, [B], chunk_size=4)
    ca = MsrpConnection()
    ca.attach(sa, 0.0)
    msg = sa.send(b"0123456789", "text/plain", success_report=True)
    ca.pump(0.0)
    out = b"".join(ca.data_to_send())
    sends = parse_stream(out)
    tids = [m.tid for m in sends]
    assert [str(m.byte_range) for m in sends if m.message_id == msg.message_id] == [
        "1-4/10", "5-8/10", "9-10/10"]
    ev = []
    for tid in tids:
        ev += ca.receive_data(f"MSRP {tid} 200 OK\r\nTo-Path: {A}\r\nFrom-Path: {B}\r\n"
                              f"-------{tid}$\r\n".encode(), 0.0)
    ranges = ["1-4/10", "5-8/10", "9-10/10"]
    for i, br in enumerate(ranges):
        rep = (f"MSRP rep{i}xx REPORT\r\nTo-Path: {A}\r\nFrom-Path: {B}\r\n"
               f"Message-ID: {msg.message_id}\r\nByte-Range: {br}\r\nStatus: 000 200 OK\r\n"
               f"-------rep{i}xx$\r\n").encode()
        ev += ca.receive_data(rep, 0.0)
        delivered = [e for e in ev if isinstance(e, MessageDelivered)]
        assert len(delivered) == (1 if i == 2 else 0)


def test_bad_success_report_header_is_answered_400_not_raised() -> None:
    """Found by the fuzz campaign: receive_data raised MsrpParseError out of the connection
    (killing its reader) for a SEND whose Success-Report value is not yes/no."""
    cb, _sb = _bob()
    ev = cb.receive_data(_send("tid001", "msg1xx", "1-2/2", b"hi",
                               extra="Success-Report: yes-please\r\n"), 0.0)
    assert _statuses(cb) == [400]
    assert any(isinstance(e, RequestRejected) for e in ev)


def test_sdp_max_size_with_control_character_is_sdp_error() -> None:
    """Found by the fuzz campaign: `a=max-size:4096\\x1d` raised ValueError."""
    from simpleim.errors import SdpError
    from simpleim.sdp.model import parse_sdp
    from simpleim.sdp.msrp import MsrpMedia

    sdp = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    b"t=0 0\r\nm=message 7777 TCP/MSRP *\r\na=accept-types:text/plain\r\n"
                    b"a=path:msrp://127.0.0.1:7777/abcd;tcp\r\na=max-size:4096\x1d\r\n")
    with pytest.raises(SdpError) as info:
        MsrpMedia.from_media(sdp.media[0])
    assert info.value.status == 400
