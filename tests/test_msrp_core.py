"""MSRP sans-I/O core: URIs, sessions, transactions, responses, reports, reassembly, setup."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.errors import AuthError, LocalProtocolError, SdpError
from simpleim.msrp import (
    BindFailed,
    ByteRange,
    MemorySink,
    MessageAborted,
    MessageDelivered,
    MessageFailed,
    MessageReceived,
    MessageSent,
    MsrpConnection,
    MsrpRequest,
    MsrpResponse,
    MsrpSession,
    MsrpUri,
    OutgoingState,
    RelayAuth,
    RelayGrant,
    ReportReceived,
    RequestRejected,
    SessionBound,
    make_request,
    parse_stream,
    plan_connection,
    resolve_setup,
)
from simpleim.msrp.fsm import (
    BINDING_TABLE,
    MESSAGE_TABLE,
    Binding,
    BindInput,
    MsgAction,
    MsgInput,
    step,
)
from simpleim.msrp.message import MsrpHeaders
from simpleim.msrp.reassembly import RangeSet, Reassembler
from simpleim.timers import Timers

A = MsrpUri.parse("msrp://127.0.0.1:7777/alice1;tcp")
B = MsrpUri.parse("msrp://127.0.0.1:8888/bob22;tcp")


# --------------------------------------------------------------------------- URIs
def test_uri_parse_and_str() -> None:
    u = MsrpUri.parse("MSRPS://user@[2001:db8::1]:2855/s+id=1;TCP;foo=bar;baz")
    assert (u.scheme, u.host, u.port, u.session_id) == ("msrps", "2001:db8::1", 2855, "s+id=1")
    assert u.userinfo == "user" and u.params == (("foo", "bar"), ("baz", None)) and u.secure
    assert str(u) == "msrps://user@[2001:db8::1]:2855/s+id=1;TCP;foo=bar;baz"


@pytest.mark.parametrize("bad", [
    "sip:alice@example.com", "msrp://host:1/sid", "msrp://:1/s;tcp", "msrp://[::1/s;tcp",
    "msrp://host:99999/s;tcp", "msrp://host:1/;tcp", "msrp://ho st:1/s;tcp",
])
def test_uri_bad(bad: str) -> None:
    from simpleim.errors import MsrpParseError
    with pytest.raises(MsrpParseError):
        MsrpUri.parse(bad)


def test_uri_comparison_rfc4975_6_1() -> None:
    m = MsrpUri.parse
    # scheme/host/transport case-insensitive, IPv6 by value (RCS trace: both spellings)
    assert m("MSRP://Bob.Example.COM:8888/abc;TCP").matches(m("msrp://bob.example.com:8888/abc;tcp"))
    assert m("msrp://[2001:0000:0000:0001:88FE:FCCF:2870:5DEE]:8884/s;tcp").matches(
        m("msrp://[2001::1:88fe:fccf:2870:5dee]:8884/s;tcp"))
    assert not m("msrp://h:1/ABC;tcp").matches(m("msrp://h:1/abc;tcp"))      # session-id exact
    assert not m("msrps://h:1/a;tcp").matches(m("msrp://h:1/a;tcp"))
    assert not m("msrp://h:1/a;tcp").matches(m("msrp://h:2/a;tcp"))
    assert m("msrp://x@h/a;tcp;p=1").matches(m("msrp://h:2855/a;tcp"))      # userinfo/params
    # CEMA (RFC 6714): only the session-id identifies the session
    s = MsrpSession(m("msrp://10.0.0.1:1/sess1;tcp"), cema=True)
    assert s.matches_to(m("msrp://192.0.2.9:5/sess1;tcp"))
    assert not MsrpSession(m("msrp://10.0.0.1:1/sess1;tcp")).matches_to(
        m("msrp://192.0.2.9:5/sess1;tcp"))


# --------------------------------------------------------------------------- harness
class Pair:
    """Alice (active) and Bob (passive) joined by an in-memory 'wire'."""

    def __init__(self, chunk: int = 2048, timers: Timers | None = None, **bob_kw: object) -> None:
        self.sa = MsrpSession(A, [B], chunk_size=chunk)
        self.sb = MsrpSession(B, [A], **bob_kw)  # type: ignore[arg-type]
        kw = {"timers": timers} if timers else {}
        self.ca = MsrpConnection(**kw)  # type: ignore[arg-type]
        self.cb = MsrpConnection(resolver=lambda u: self.sb if u.session_id == "bob22" else None,
                                 **kw)  # type: ignore[arg-type]
        self.ea: list = []
        self.eb: list = []
        self.wire_ab: list[bytes] = []
        self.wire_ba: list[bytes] = []

    def run(self, now: float = 0.0, rounds: int = 200) -> None:
        for _ in range(rounds):
            self.ea += self.ca.pump(now)
            ab = b"".join(self.ca.data_to_send())
            if ab:
                self.wire_ab.append(ab)
                self.eb += self.cb.receive_data(ab, now)
            self.eb += self.cb.pump(now)
            ba = b"".join(self.cb.data_to_send())
            if ba:
                self.wire_ba.append(ba)
                self.ea += self.ca.receive_data(ba, now)
            if not ab and not ba:
                return

    def of(self, events: list, kind: type) -> list:
        return [e for e in events if isinstance(e, kind)]


def test_bind_send_then_transfer_with_success_report() -> None:
    p = Pair(chunk=1000)
    p.ca.attach(p.sa, 0.0)
    data = os.urandom(10_000)
    big = p.sa.send(data, "application/octet-stream", success_report=True)
    p.run()
    first = parse_stream(p.wire_ab[0])[0]
    # RFC 4975 §5.4: the active side's first SEND binds the connection; empty if nothing to say
    assert isinstance(first, MsrpRequest) and first.method == "SEND" and first.body is None
    assert p.sa.binding is Binding.BOUND and p.sb.binding is Binding.BOUND
    assert p.of(p.eb, SessionBound)
    (rx,) = p.of(p.eb, MessageReceived)
    assert rx.message.sink.data == data and rx.message.total == 10_000
    assert p.of(p.ea, MessageSent)[0].message is big
    assert p.of(p.ea, MessageDelivered)[0].message is big and big.state is OutgoingState.DELIVERED
    reports = [m for w in p.wire_ba for m in parse_stream(w)
               if isinstance(m, MsrpRequest) and m.method == "REPORT"]
    assert len(reports) == 1 and reports[0].byte_range == ByteRange(1, 10_000, 10_000)
    assert str(reports[0].status) == "000 200 OK"
    # §7.1.2: nobody answers a REPORT
    assert not [m for w in p.wire_ab for m in parse_stream(w)
                if isinstance(m, MsrpResponse) and m.tid == reports[0].tid]
    assert p.sa.outgoing == {}


def test_chunks_byte_ranges_and_response_paths() -> None:
    p = Pair(chunk=4)
    p.ca.attach(p.sa, 0.0)
    p.sa.send(b"0123456789", "text/plain")
    p.run()
    sends = [m for w in p.wire_ab for m in parse_stream(w)
             if isinstance(m, MsrpRequest) and m.body is not None]
    assert [str(m.byte_range) for m in sends] == ["1-4/10", "5-8/10", "9-10/10"]
    assert [m.flag for m in sends] == ["+", "+", "$"]
    assert len({m.tid for m in sends}) == 3                       # one transaction per chunk
    resps = [m for w in p.wire_ba for m in parse_stream(w) if isinstance(m, MsrpResponse)]
    assert all(r.status_code == 200 for r in resps)
    # §7.2 hop-by-hop: To-Path = previous hop, From-Path = us
    assert resps[0].to_path == [A] and resps[0].from_path == [B]


def test_short_message_interrupts_long_transfer() -> None:
    p = Pair(chunk=100)
    p.ca.attach(p.sa, 0.0)
    p.run()
    p.sa.send(b"x" * 1000, "application/octet-stream")
    p.ca.pump(0.0, budget=250)          # a few chunks of the long message are out
    p.sa.send(b"urgent", "text/plain")
    p.run()
    order = [m.body for w in p.wire_ab for m in parse_stream(w)
             if isinstance(m, MsrpRequest) and m.body is not None]
    assert b"urgent" in order and order.index(b"urgent") < len(order) - 1
    got = {e.message.sink.data for e in p.of(p.eb, MessageReceived)}
    assert got == {b"x" * 1000, b"urgent"}


def test_failure_report_no_and_partial_rules() -> None:
    p = Pair()
    p.ca.attach(p.sa, 0.0)
    p.run()
    n_before = len(p.wire_ba)
    m1 = p.sa.send(b"fire and forget", "text/plain", failure_report="no")
    p.run()
    assert len(p.wire_ba) == n_before                   # §7.2: 'no' -> no response at all
    assert p.of(p.ea, MessageSent)[-1].message is m1    # nothing to wait for
    p.sb.accept_types = ("text/plain",)
    m2 = p.sa.send(b"<x/>", "application/xml", failure_report="partial")
    m3 = p.sa.send(b"fine", "text/plain", failure_report="partial")
    p.run()
    resps = [m for w in p.wire_ba[n_before:] for m in parse_stream(w)]
    # 'partial' -> only the failure is answered (415, §7.3.1)
    assert [r.status_code for r in resps if isinstance(r, MsrpResponse)] == [415]
    assert {e.message.sink.data for e in p.of(p.eb, MessageReceived)} >= {b"fire and forget",
                                                                           b"fine"}
    assert m2.state is OutgoingState.ACKED and m3.state is OutgoingState.ACKED
    assert p.of(p.eb, RequestRejected)[0].status == 415


def test_send_whole_frames_what_send_and_pump_would() -> None:
    """send_whole (a switch's copies): a one-chunk message with Failure-Report partial / no
    leaves at once, byte for byte what send() + pump() put on the wire for it but for the
    transaction and Message-ID idents (RFC 4975 §7.1.1 head, Byte-Range 1-N/N, ``$``); the
    peer receives it, nothing stays queued.  Not taken (None): unbound, a message of the
    session still queued (order), empty, above a chunk; Failure-Report yes is refused."""
    p = Pair(chunk=64)
    assert p.ca.send_whole(p.sa, b"too early", "text/plain") is None   # not bound yet
    p.ca.attach(p.sa, 0.0)
    p.run()
    n_before = len(p.wire_ab)
    queued = p.sa.send(b"by the queue", "text/plain", failure_report="partial")
    assert p.ca.send_whole(p.sa, b"x", "text/plain") is None           # order: queue first
    p.run()
    mid = p.ca.send_whole(p.sa, b"switched copy", "message/cpim", failure_report="no")
    assert mid is not None and p.sa.outgoing.get(mid) is None
    p.run()
    sends = [m for w in p.wire_ab[n_before:] for m in parse_stream(w)
             if isinstance(m, MsrpRequest) and m.body is not None]
    queued_frame, whole = sends
    assert whole.message_id == mid and whole.body == b"switched copy"
    assert (str(whole.byte_range), whole.flag) == ("1-13/13", "$")

    def shape(m: MsrpRequest) -> list[str]:
        return [line for line in m.to_bytes().decode().split("\r\n")[1:]
                if not line.startswith(("Message-ID:", "Failure-Report:", "Byte-Range:",
                                        "Content-Type:", "-------"))]
    assert shape(whole)[:2] == shape(queued_frame)[:2]                  # To-Path, From-Path
    assert whole.headers.get("Failure-Report") == "no"
    assert [e.message.sink.data for e in p.of(p.eb, MessageReceived)][-2:] == \
        [b"by the queue", b"switched copy"]
    assert queued.state is OutgoingState.ACKED and p.sa.unsent() == 0
    assert p.ca.send_whole(p.sa, b"", "text/plain") is None
    assert p.ca.send_whole(p.sa, b"y" * 65, "text/plain") is None     # above a chunk
    with pytest.raises(LocalProtocolError):
        p.ca.send_whole(p.sa, b"z", "text/plain", failure_report="yes")


def test_held_acknowledgement_waits_for_the_receiver() -> None:
    """hold_acks (store-and-forward, DM-04): the chunks before the last are answered at
    once; the last chunk's 200 and the success REPORT only after acknowledge(); a refused
    one gets its failure status and fails the sender's message."""
    p = Pair(chunk=1000)
    p.sb.hold_acks = True
    p.ca.attach(p.sa, 0.0)
    big = p.sa.send(b"z" * 3000, "text/plain", success_report=True)
    p.run()
    (rx,) = p.of(p.eb, MessageReceived)
    assert rx.message.held is not None
    oks = [m for w in p.wire_ba for m in parse_stream(w) if isinstance(m, MsrpResponse)]
    # the binding SEND and the first two chunks are answered, not the last one
    assert len(oks) == 3 and big.state is not OutgoingState.DELIVERED
    assert not p.of(p.ea, MessageSent)
    p.cb.acknowledge(p.sb, rx.message, 0.0)
    p.run()
    assert p.of(p.ea, MessageSent)[0].message is big
    assert big.state is OutgoingState.DELIVERED                       # the REPORT came
    p.cb.acknowledge(p.sb, rx.message, 0.0)                           # once only
    assert p.cb.data_to_send() == []
    refused = p.sa.send(b"no", "text/plain")
    p.run()
    (_, rx2) = p.of(p.eb, MessageReceived)
    p.cb.acknowledge(p.sb, rx2.message, 0.0, 403, "not stored")
    p.run()
    (f,) = p.of(p.ea, MessageFailed)
    assert f.message is refused and f.status == 403


def test_415_fails_message_with_failure_report_yes() -> None:
    p = Pair(accept_types=("text/*",))
    p.ca.attach(p.sa, 0.0)
    m = p.sa.send(b"{}", "application/json")
    p.sa.send(b"hi", "text/plain")
    p.run()
    (f,) = p.of(p.ea, MessageFailed)
    assert f.message is m and f.status == 415 and m.state is OutgoingState.FAILED
    assert [e.message.sink.data for e in p.of(p.eb, MessageReceived)] == [b"hi"]


def test_413_stops_the_sender() -> None:
    p = Pair(chunk=100, max_size=250)
    p.ca.attach(p.sa, 0.0)
    m = p.sa.send(b"y" * 100_000, "text/plain")       # 1000 chunks, window of 256
    p.run()
    (f,) = p.of(p.ea, MessageFailed)
    assert f.status == 413 and m.state is OutgoingState.FAILED
    sent = [x for w in p.wire_ab for x in parse_stream(w)
            if isinstance(x, MsrpRequest) and x.body]
    # the total is announced in Byte-Range: Bob refuses the chunks; after the first 413 Alice
    # sends no further chunk of that message (§10.5)
    assert len(sent) <= 256


def test_481_unknown_session_and_501_unknown_method() -> None:
    p = Pair()
    p.ca.attach(p.sa, 0.0)
    p.run()
    ghost = MsrpUri.parse("msrp://127.0.0.1:8888/nobody;tcp")
    req = make_request("t0001", "SEND", [ghost], [A], [("Message-ID", "m0001"),
                       ("Content-Type", "text/plain")], b"hello?")
    evs = p.cb.receive_data(req.to_bytes(), 0.0)
    (r,) = parse_stream(b"".join(p.cb.data_to_send()))
    assert isinstance(r, MsrpResponse) and r.status_code == 481 and r.tid == "t0001"
    assert p.of(evs, RequestRejected)
    unk = make_request("t0002", "FROBNICATE", [B], [A], [("Message-ID", "m0002")])
    p.cb.receive_data(unk.to_bytes(), 0.0)
    (r,) = parse_stream(b"".join(p.cb.data_to_send()))
    assert isinstance(r, MsrpResponse) and r.status_code == 501
    # REPORT for something unknown: no response (§7.1.2)
    rep = make_request("t0003", "REPORT", [B], [A], [("Message-ID", "m0003"),
                       ("Byte-Range", "1-3/3"), ("Status", "000 200 OK")])
    evs = p.cb.receive_data(rep.to_bytes(), 0.0)
    assert p.cb.data_to_send() == [] and p.of(evs, ReportReceived)


def test_506_session_bound_elsewhere_and_403_wrong_peer() -> None:
    p = Pair()
    p.ca.attach(p.sa, 0.0)
    p.run()
    other = MsrpConnection(resolver=lambda u: p.sb)
    req = make_request("t0009", "SEND", [B], [A], [("Message-ID", "m0009"),
                       ("Content-Type", "text/plain")], b"dup")
    other.receive_data(req.to_bytes(), 0.0)
    (r,) = parse_stream(b"".join(other.data_to_send()))
    assert isinstance(r, MsrpResponse) and r.status_code == 506
    intruder = MsrpUri.parse("msrp://192.0.2.66:1/evil;tcp")
    req = make_request("t0010", "SEND", [B], [intruder], [("Message-ID", "m0010"),
                       ("Content-Type", "text/plain")], b"x")
    p.cb.receive_data(req.to_bytes(), 0.0)
    (r,) = parse_stream(b"".join(p.cb.data_to_send()))
    assert isinstance(r, MsrpResponse) and r.status_code == 403


def test_408_transaction_timeout() -> None:
    t = Timers(msrp_transaction=30.0)
    sa = MsrpSession(A, [B])
    ca = MsrpConnection(timers=t)
    ca.attach(sa, 100.0)
    m = sa.send(b"lost", "text/plain")
    ca.pump(100.0)
    ca.data_to_send()                    # into the void: nobody answers
    assert ca.next_deadline() == pytest.approx(130.0)
    assert ca.handle_timer(129.9) == []
    evs = ca.handle_timer(130.0)
    assert any(isinstance(e, BindFailed) and e.status == 408 for e in evs)
    (f,) = [e for e in evs if isinstance(e, MessageFailed)]
    assert f.message is m and f.status == 408
    assert ca.next_deadline() is None


def test_failure_report_from_relay_fails_message() -> None:
    p = Pair()
    p.ca.attach(p.sa, 0.0)
    m = p.sa.send(b"via relay", "text/plain", success_report=True)
    p.run()
    m.state = OutgoingState.SENT       # pretend still waiting (relay scenario)
    rep = make_request("r0001", "REPORT", [A], [B], [("Message-ID", m.message_id),
                       ("Byte-Range", "1-9/9"), ("Status", "000 408 Timeout")])
    p.sa.outgoing[m.message_id] = m
    evs = p.ca.receive_data(rep.to_bytes(), 0.0)
    (f,) = [e for e in evs if isinstance(e, MessageFailed)]
    assert f.status == 408 and p.ca.data_to_send() == []


def test_abort_and_connection_lost() -> None:
    p = Pair(chunk=10)
    p.ca.attach(p.sa, 0.0)
    p.run()
    m = p.sa.send(b"z" * 100, "text/plain")
    p.ca.pump(0.0, budget=150)
    p.cb.receive_data(b"".join(p.ca.data_to_send()), 0.0)
    p.sa.abort(m.message_id)
    p.run()
    assert m.state is OutgoingState.ABORTED
    (ab,) = p.of(p.eb, MessageAborted)
    assert ab.message.aborted and ab.message.sink.aborted
    with pytest.raises(LocalProtocolError):
        p.sa.abort(m.message_id)
    # a message in flight when the connection dies fails; partial incoming ones abort
    m2 = p.sa.send(b"q" * 100, "text/plain")
    p.ca.pump(0.0, budget=40)
    p.cb.receive_data(b"".join(p.ca.data_to_send()), 0.0)
    evs = p.ca.connection_lost()
    assert [e.message for e in evs if isinstance(e, MessageFailed)] == [m2]
    evs = p.cb.connection_lost()
    assert p.of(evs, MessageAborted) and p.sb.binding is Binding.CLOSED


def test_framing_error_answers_and_fails_connection() -> None:
    from simpleim.msrp import ConnectionFailed
    c = MsrpConnection(resolver=lambda u: None)
    evs = c.receive_data(b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/b;tcp\r\nFrom-Path: msrp://c:2/d;tcp"
                         b"\r\nX: " + b"q" * 9000, 0.0)
    assert any(isinstance(e, ConnectionFailed) and e.error.status == 413 for e in evs)


# --------------------------------------------------------------------------- reassembly
def _chunk(mid: str, start: int, data: bytes, total: int | None, flag: str) -> MsrpRequest:
    end = start + len(data) - 1
    return make_request("tx" + os.urandom(3).hex(), "SEND", [B], [A],
                        [("Message-ID", mid), ("Byte-Range", f"{start}-{end}/{total or '*'}"),
                         ("Content-Type", "application/octet-stream")], data, flag)


def test_out_of_order_and_duplicate_chunks() -> None:
    p = Pair()
    p.ca.attach(p.sa, 0.0)
    p.run()
    data = os.urandom(3000)
    parts = [_chunk("mixed1", 1, data[:1000], 3000, "+"),
             _chunk("mixed1", 2001, data[2000:], 3000, "$"),
             _chunk("mixed1", 1, data[:1000], 3000, "+"),           # duplicate
             _chunk("mixed1", 1001, data[1000:2000], 3000, "+")]
    evs: list = []
    for c in parts:
        evs += p.cb.receive_data(c.to_bytes(), 0.0)
    (rx,) = [e for e in evs if isinstance(e, MessageReceived)]
    assert hashlib.sha1(rx.message.sink.data).digest() == hashlib.sha1(data).digest()  # noqa: S324


def test_rangeset() -> None:
    r = RangeSet()
    for s, e in [(10, 20), (0, 5), (5, 10), (30, 40), (25, 31), (0, 3)]:
        r.add(s, e)
    assert r.ranges() == [(0, 20), (25, 40)] and r.contiguous_end == 20 and r.total == 35
    assert r.covers(26, 39) and not r.covers(19, 26)


def test_reassembler_limits() -> None:
    from simpleim.errors import MsrpParseError
    ra = Reassembler(max_size=10, max_messages=1)
    with pytest.raises(MsrpParseError) as ei:
        ra.begin_chunk(_chunk("big123", 1, b"x" * 5, 100, "+"))
    assert ei.value.status == 413
    ra.begin_chunk(_chunk("one123", 1, b"x" * 5, 10, "+"))
    with pytest.raises(MsrpParseError) as ei:
        ra.begin_chunk(_chunk("two123", 1, b"x" * 5, 10, "+"))
    assert ei.value.status == 413
    with pytest.raises(MsrpParseError):
        ra.begin_chunk(make_request("abcd1", "SEND", [B], [A], []))     # no Message-ID


def test_unknown_length_stream_and_memory_sink() -> None:
    from simpleim.msrp import BytesSource
    p = Pair(chunk=7)
    p.ca.attach(p.sa, 0.0)
    p.sa.send(source=BytesSource(b"abcdefghijklmnopq"), total=None, content_type="text/plain")
    p.run()
    ranges = [str(m.byte_range) for w in p.wire_ab for m in parse_stream(w)
              if isinstance(m, MsrpRequest) and m.body]
    assert ranges == ["1-7/*", "8-14/*", "15-17/17"]
    assert p.of(p.eb, MessageReceived)[0].message.sink.data == b"abcdefghijklmnopq"
    s = MemorySink()
    s.write_at(3, b"de")
    s.write_at(0, b"abc")
    assert s.data == b"abcde"


# --------------------------------------------------------------------------- state tables
def test_state_tables_reject_unknown_inputs() -> None:
    from simpleim.errors import RemoteProtocolError
    row = step(MESSAGE_TABLE, OutgoingState.SENT, MsgInput.ALL_ACKED)
    assert row.new_state is OutgoingState.ACKED and row.action is MsgAction.NOTIFY_SENT
    with pytest.raises(LocalProtocolError):
        step(MESSAGE_TABLE, OutgoingState.DELIVERED, MsgInput.CHUNK)
    with pytest.raises(RemoteProtocolError):
        step(BINDING_TABLE, Binding.CLOSED, BindInput.REQUEST_IN, "remote")


def test_state_tables_are_read_only_enum_tables_citing_rfcs() -> None:
    """Like the SIP transaction tables: enum states/inputs/actions, every row cites its RFC
    section, the tables cannot be changed at run time."""
    from types import MappingProxyType

    from simpleim.msrp.fsm import BindAction, Row
    from simpleim.msrp.relay import AUTH_TABLE, AuthAction, AuthInput, AuthState

    tables = [(MESSAGE_TABLE, OutgoingState, MsgInput, MsgAction),
              (BINDING_TABLE, Binding, BindInput, BindAction),
              (AUTH_TABLE, AuthState, AuthInput, AuthAction)]
    for table, states, inputs, actions in tables:
        assert isinstance(table, MappingProxyType)
        with pytest.raises(TypeError):
            table[next(iter(table))] = next(iter(table.values()))  # type: ignore[index]
        for (state, inp), row in table.items():
            assert isinstance(state, states) and isinstance(inp, inputs)
            assert isinstance(row, Row) and isinstance(row.new_state, states)
            assert isinstance(row.action, actions)
            assert re.search(r"RFC \d{4} §\d", row.cite), (state, inp, row.cite)


# --------------------------------------------------------------------------- setup
def test_resolve_setup_rfc6135() -> None:
    assert resolve_setup("actpass", "active") == ("passive", "active")
    assert resolve_setup("actpass", "passive") == ("active", "passive")
    assert resolve_setup("passive", "active") == ("passive", "active")
    assert resolve_setup(None, None) == ("active", "passive")         # RFC 4975 behaviour
    assert resolve_setup("holdconn", "passive") == ("holdconn", "holdconn")
    for o, a in [("active", "active"), ("passive", "passive"), ("actpass", "actpass"),
                 ("passive", None), ("bogus", "active")]:
        with pytest.raises(SdpError):
            resolve_setup(o, a)


def test_plan_connection_cema_and_relay() -> None:
    # RCS 5.1 file transfer trace: offer setup:passive + msrp-cema, answer setup:active.
    path = [MsrpUri.parse("msrp://[2001:0000:0000:0001:0000:0000:0000:0002]:16012/e4a55405c2;tcp")]
    plan = plan_connection(we_are_offerer=False, offer_setup="passive", answer_setup="active",
                           remote_path=path, local_cema=True, remote_cema=True,
                           remote_c_address="2001:0:0:1::2", remote_m_port=16012)
    assert plan.connect and (plan.host, plan.port) == ("2001:0:0:1::2", 16012)
    # CEMA: a middlebox rewrote c=/m=, the path URI is untouched -> go to c=/m=
    plan = plan_connection(we_are_offerer=False, offer_setup="passive", answer_setup="active",
                           remote_path=path, local_cema=True, remote_cema=True,
                           remote_c_address="198.51.100.7", remote_m_port=4000)
    assert (plan.host, plan.port) == ("198.51.100.7", 4000)
    # without CEMA on both ends the path URI wins (RFC 4975 §6.2)
    plan = plan_connection(we_are_offerer=False, offer_setup="passive", answer_setup="active",
                           remote_path=path, local_cema=True, remote_cema=False,
                           remote_c_address="198.51.100.7", remote_m_port=4000)
    assert (plan.host, plan.port) == (path[0].host, 16012)
    passive = plan_connection(we_are_offerer=True, offer_setup="passive", answer_setup="active",
                              remote_path=path)
    assert not passive.connect
    tls = plan_connection(we_are_offerer=True, offer_setup="actpass", answer_setup="passive",
                          remote_path=[MsrpUri.parse("msrps://h.example:1/s;tcp")])
    assert tls.connect and tls.tls
    relay = plan_connection(we_are_offerer=False, offer_setup="active", answer_setup="passive",
                            remote_path=path,
                            relay_path=[MsrpUri.parse("msrp://127.0.0.1:2955/r1;tcp")])
    assert relay.connect and relay.port == 2955


# --------------------------------------------------------------------------- relay AUTH
def test_relay_auth_digest_flow() -> None:
    from simpleim.sip.auth import parse_credentials
    relay = MsrpUri.parse("msrp://127.0.0.1:2955;tcp")
    auth = RelayAuth(relay, B, "bob", "bobpw", expires=600)
    first = auth.start()
    assert first.method == "AUTH" and first.headers.get("Authorization") is None
    assert first.to_path == [relay] and first.from_path == [B]
    chal = MsrpResponse(first.tid, MsrpHeaders([
        ("To-Path", str(B)), ("From-Path", str(relay)),
        ("WWW-Authenticate", 'Digest realm="example.test", nonce="abc123", qop="auth", '
                             'opaque="6b61"')]), 401, "Unauthorized")
    second = auth.handle_response(chal)
    assert isinstance(second, MsrpRequest)
    cred = parse_credentials(second.headers.get("Authorization") or "")
    assert cred.username == "bob" and cred.uri == str(relay) and cred.qop == "auth"
    # RFC 2617 §3.2.2.1 response with method AUTH
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731,S324
    ha1, ha2 = md5("bob:example.test:bobpw"), md5(f"AUTH:{relay}")
    want = md5(f"{ha1}:abc123:{cred.nc}:{cred.cnonce}:auth:{ha2}")
    assert cred.response == want
    assert second.headers.get("Expires") == "600"
    grant = auth.handle_response(MsrpResponse(second.tid, MsrpHeaders([
        ("To-Path", str(B)), ("From-Path", str(relay)),
        ("Use-Path", "msrp://127.0.0.1:2955/xyz;tcp"), ("Expires", "600")]), 200, "OK"))
    assert isinstance(grant, RelayGrant) and grant.expires == 600
    assert grant.use_path[0].session_id == "xyz"
    # the session advertises relay + own URI, and sends via the relay (RFC 4976 §5.2)
    s = MsrpSession(B, [A], relay_path=grant.use_path)
    assert s.local_path == [*grant.use_path, B] and s.to_path == [*grant.use_path, A]


def test_relay_auth_refused() -> None:
    relay = MsrpUri.parse("msrp://127.0.0.1:2955;tcp")
    auth = RelayAuth(relay, B, "bob", "wrong")
    req = auth.start()
    chal = MsrpResponse(req.tid, MsrpHeaders([("WWW-Authenticate",
                                               'Digest realm="r", nonce="n1", qop="auth"')]),
                        401, None)
    req2 = auth.handle_response(chal)
    assert isinstance(req2, MsrpRequest)
    with pytest.raises(AuthError):
        auth.handle_response(MsrpResponse(req2.tid, MsrpHeaders([("WWW-Authenticate",
                             'Digest realm="r", nonce="n2", qop="auth"')]), 401, None))
    auth2 = RelayAuth(relay, B, "bob", "pw", expires=10)
    r = auth2.start()
    r2 = auth2.handle_response(MsrpResponse(r.tid, MsrpHeaders([("Min-Expires", "60")]), 423,
                                            None))
    assert isinstance(r2, MsrpRequest) and r2.headers.get("Expires") == "60"
    with pytest.raises(AuthError):
        auth2.handle_response(MsrpResponse(r2.tid, MsrpHeaders(), 403, None))


def test_failure_report_end_to_end_when_sent_through_a_relay() -> None:
    # RFC 4975 §7.1.2 / RFC 4976 §7: the 415 response stops at the relay; the sender still
    # learns about it from a failure REPORT sent along the From-Path.
    relay = MsrpUri.parse("msrp://127.0.0.1:2955/relay1;tcp")
    sb = MsrpSession(B, [A], accept_types=("text/plain",))
    cb = MsrpConnection(resolver=lambda u: sb)
    req = make_request("t0100", "SEND", [B], [relay, A],
                       [("Message-ID", "m0100"), ("Byte-Range", "1-4/4"),
                        ("Content-Type", "image/png")], b"\x89PNG")
    cb.receive_data(req.to_bytes(), 0.0)
    out = parse_stream(b"".join(cb.data_to_send()))
    resp = [m for m in out if isinstance(m, MsrpResponse)]
    rep = [m for m in out if isinstance(m, MsrpRequest)]
    assert resp[0].status_code == 415 and resp[0].to_path == [relay]
    assert rep[0].method == "REPORT" and rep[0].to_path == [relay, A]
    assert rep[0].status is not None and rep[0].status.code == 415
    assert rep[0].message_id == "m0100" and str(rep[0].byte_range) == "1-4/4"


_hv = st.sampled_from(["", "x", "1-2/3", "1-*/*", "0-5/2", "000 200 OK", "yes", "no", "partial",
                       "maybe", "text/plain", "msrp://127.0.0.1:8888/bob22;tcp",
                       "msrp://127.0.0.1:7777/alice1;tcp", "msrp://h:1/s;tcp msrp://h:2/t;tcp",
                       "abcd", "9" * 25, "msrp://[::1]:5/x;tcp", "\u00e9t\u00e9"])
_hn = st.sampled_from(["To-Path", "From-Path", "Message-ID", "Byte-Range", "Status",
                       "Success-Report", "Failure-Report", "Content-Type", "Expires", "X-Y"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["SEND", "REPORT", "AUTH", "NICKNAME", "200", "481"]),
                          st.lists(st.tuples(_hn, _hv), max_size=7),
                          st.one_of(st.none(), st.binary(max_size=40)),
                          st.sampled_from("$+#")), max_size=6))
def test_connection_never_raises_on_peer_input(frames: list) -> None:
    sb = MsrpSession(B, [A], accept_types=("text/*",), max_size=100)
    conn = MsrpConnection(resolver=lambda u: sb)
    for i, (method, headers, body, flag) in enumerate(frames):
        tid = f"fz{i:04d}"
        lines = [f"MSRP {tid} {method}"] + [f"{n}: {v}" for n, v in headers]
        raw = ("\r\n".join(lines) + "\r\n").encode()
        if body is not None and not method.isdigit():
            raw += b"\r\n" + body.replace(b"-", b"_") + b"\r\n"
        raw += f"-------{tid}{flag}\r\n".encode()
        conn.receive_data(raw, float(i))       # events, never an exception
        conn.data_to_send()
    conn.handle_timer(1e9)
    conn.connection_lost()


# --------------------------------------------------------------------------- resume (RFC 5547)
def test_resume_sender_starts_at_offset_and_receiver_completes() -> None:
    """RFC 5547 §6 file-range N+1-total: the sender's first chunk is Byte-Range N+1-.../total
    (RFC 4975 §7.1.1); a receiver holding bytes 1..N (resume_from=N) appends and completes."""
    data = os.urandom(10_000)
    held = 3_000
    p = Pair(chunk=4_000)
    sink = MemorySink()
    sink.write_at(0, data[:held])                          # the partial file kept before
    p.sb.set_sink_factory(lambda _req: sink, resume_from=held)
    p.ca.attach(p.sa, 0.0)
    msg = p.sa.send(data, "application/octet-stream", offset=held, success_report=True)
    assert msg.start == held and msg.sent_bytes == 0
    p.run()
    sends = [m for w in p.wire_ab for m in parse_stream(w)
             if isinstance(m, MsrpRequest) and m.body is not None]
    assert [str(m.byte_range) for m in sends] == ["3001-7000/10000", "7001-10000/10000"]
    assert [m.flag for m in sends] == ["+", "$"]
    (rx,) = p.of(p.eb, MessageReceived)
    assert rx.message.complete and rx.message.sink is sink and sink.data == data
    assert rx.message.start == held and rx.message.received == 7_000
    # §7.1.3: the success REPORT covers what this message carried; the sender takes it as
    # delivery of its range.
    reports = [m for w in p.wire_ba for m in parse_stream(w)
               if isinstance(m, MsrpRequest) and m.method == "REPORT"]
    assert [str(r.byte_range) for r in reports] == ["3001-10000/10000"]
    assert p.of(p.ea, MessageDelivered)[0].message is msg and msg.sent_bytes == 7_000


def test_resume_sub_range_ends_with_dollar_at_the_stop() -> None:
    """file-range 2001-6000 of a 10000-byte file: offset + length, the last chunk ($) ends at
    the stop, the total stays the file size."""
    data = os.urandom(10_000)
    p = Pair(chunk=3_000)
    sink = MemorySink()
    p.sb.set_sink_factory(lambda _req: sink, resume_from=2_000)
    p.ca.attach(p.sa, 0.0)
    p.sa.send(data, "application/octet-stream", offset=2_000, length=4_000)
    p.run()
    sends = [m for w in p.wire_ab for m in parse_stream(w)
             if isinstance(m, MsrpRequest) and m.body is not None]
    assert [(str(m.byte_range), m.flag) for m in sends] == [("2001-5000/10000", "+"),
                                                             ("5001-6000/10000", "$")]
    (rx,) = p.of(p.eb, MessageReceived)
    assert rx.message.complete and bytes(sink.buffer[2_000:6_000]) == data[2_000:6_000]


def test_message_starting_mid_file_without_resume_stays_incomplete() -> None:
    """Without resume_from the bytes 1..N are missing: no MessageReceived (RFC 4975 §7.3.1)."""
    p = Pair(chunk=4_000)
    p.ca.attach(p.sa, 0.0)
    p.sa.send(os.urandom(10_000), "application/octet-stream", offset=3_000)
    p.run()
    assert not p.of(p.eb, MessageReceived) and p.sb.reassembler.in_progress == 1


def test_send_range_checks() -> None:
    s = MsrpSession(A, [B])
    with pytest.raises(LocalProtocolError):
        s.send(b"abc", offset=4)
    with pytest.raises(LocalProtocolError):
        s.send(b"abc", offset=1, length=3)
    with pytest.raises(LocalProtocolError):
        s.send(b"abc", offset=-1)
    with pytest.raises(LocalProtocolError):
        Reassembler().set_sink_factory(lambda _r: MemorySink(), resume_from=-1)


# --------------------------------------------------------------------------- interruption
def _sends(wires: list[bytes]) -> list[MsrpRequest]:
    return [m for m in parse_stream(b"".join(wires))
            if isinstance(m, MsrpRequest) and m.method == "SEND" and m.body is not None]


def test_interruptible_chunks_are_open_ended_and_reassembled() -> None:
    """RFC 4975 §7.1.1: an interruptible chunk says Byte-Range n-*/total; written whole it
    still ends at chunk size with '+', the last one with '$'."""
    p = Pair()
    p.sa = MsrpSession(A, [B], chunk_size=4_000, interrupt_slice=1_000)
    p.ca.attach(p.sa, 0.0)
    data = os.urandom(10_000)
    msg = p.sa.send(data, "application/octet-stream", success_report=True)
    p.run()
    sends = _sends(p.wire_ab)
    assert [(str(m.byte_range), m.flag, len(m.body or b"")) for m in sends] == [
        ("1-*/10000", "+", 4_000), ("4001-*/10000", "+", 4_000), ("8001-*/10000", "$", 2_000)]
    (rx,) = p.of(p.eb, MessageReceived)
    assert rx.message.sink.data == data
    assert p.of(p.ea, MessageSent)[0].message is msg and p.of(p.ea, MessageDelivered)


def test_urgent_message_interrupts_a_chunk_in_progress() -> None:
    """A short message queued while a big chunk is being written: the chunk is ended with '+'
    where it stands, the short message goes, the big one resumes from the next byte."""
    p = Pair()
    p.sa = MsrpSession(A, [B], chunk_size=50_000, interrupt_slice=1_000)
    p.ca.attach(p.sa, 0.0)
    p.run()
    big = os.urandom(120_000)
    p.sa.send(big, "application/octet-stream")
    p.ea += p.ca.pump(0.0, budget=5_500)          # the first chunk is open, ~5 KB written
    p.sa.send(b"urgent", "text/plain")
    p.run()
    sends = _sends(p.wire_ab)
    assert sends[0].byte_range is not None and sends[0].byte_range.end is None
    assert sends[0].flag == "+" and 0 < len(sends[0].body or b"") < 50_000      # interrupted
    assert sends[1].body == b"urgent" and sends[1].flag == "$"
    n = len(sends[0].body or b"")
    assert str(sends[2].byte_range) == f"{n + 1}-*/120000"                     # resumes
    got = {e.message.sink.data for e in p.of(p.eb, MessageReceived)}
    assert got == {big, b"urgent"}
    assert len(p.of(p.ea, MessageSent)) == 2


def test_response_interrupts_a_chunk_in_progress() -> None:
    """Our 200 to the peer's SEND must not land inside our own chunk body: the open chunk is
    ended first (§7.1.1), the stream stays well framed, both messages arrive."""
    p = Pair()
    p.sa = MsrpSession(A, [B], chunk_size=50_000, interrupt_slice=2_000)
    p.ca.attach(p.sa, 0.0)
    p.run()
    big = os.urandom(60_000)
    p.sa.send(big, "application/octet-stream")
    p.ea += p.ca.pump(0.0, budget=7_000)          # chunk open
    p.sb.send(b"hello alice", "text/plain")
    p.eb += p.cb.pump(0.0)
    p.ea += p.ca.receive_data(b"".join(p.cb.data_to_send()), 0.0)    # alice answers 200
    p.run()
    out = b"".join(p.wire_ab)
    msgs = parse_stream(out)                       # well framed (raises otherwise)
    first = [m for m in msgs if isinstance(m, MsrpRequest) and m.body][0]
    assert first.flag == "+" and len(first.body or b"") < 50_000
    assert [e.message.sink.data for e in p.of(p.eb, MessageReceived)] == [big]
    assert [e.message.sink.data for e in p.of(p.ea, MessageReceived)] == [b"hello alice"]


def test_abort_ends_the_open_chunk_with_hash() -> None:
    p = Pair()
    p.sa = MsrpSession(A, [B], chunk_size=50_000, interrupt_slice=1_000)
    p.ca.attach(p.sa, 0.0)
    p.run()
    msg = p.sa.send(os.urandom(100_000), "application/octet-stream")
    p.ea += p.ca.pump(0.0, budget=3_000)
    p.sa.abort(msg.message_id)
    p.run()
    sends = _sends(p.wire_ab)
    assert [m.flag for m in sends] == ["#"] and msg.state is OutgoingState.ABORTED
    assert p.of(p.eb, MessageAborted) and not p.of(p.eb, MessageReceived)
