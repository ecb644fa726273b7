"""The OMA Final Delivery Report (OMA SIMPLE IM §5.7, Appendix O): the document and the CPIM
request (content/final_report.py), and the MSRP REPORT with a body that carries it
(RFC 4975 §7.1.2, msrp/reports.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simpleim.client.pager import build_im
from simpleim.content.cpim import CpimDateTime, parse_cpim
from simpleim.content.final_report import (
    FINAL_REPORT_CONTENT_TYPE,
    FINAL_REPORT_NS,
    FINAL_REPORT_TYPES,
    FinalLeg,
    FinalReport,
    final_report_requested,
    is_final_report_type,
    parse_final_report,
)
from simpleim.errors import ContentError, LocalProtocolError
from simpleim.msrp import (
    ByteRange,
    MsrpRequest,
    MsrpResponse,
    MsrpSession,
    MsrpStatus,
    ProtocolViolation,
    ReportReceived,
    make_request,
    parse_stream,
)
from simpleim.msrp.reports import MAX_REPORT_BODY
from test_msrp_core import A, B, Pair

DOC = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<final xmlns="urn:oma:xml:poc:final-report" Message-ID="m123" last="true">\n'
       b'  <leg uri="sip:bob@example.test" status="200"/>\n'
       b'  <leg uri="sip:carol@example.test" status="9999" max-size="1000"/>\n'
       b'  <leg uri="sip:dave@example.test"/>\n'
       b'</final>\n')


def test_parse_the_appendix_o_document() -> None:
    """O.1: Message-ID, last, the legs; a leg without status is ignored; 9999 + max-size."""
    report = parse_final_report(DOC)
    assert report.message_id == "m123" and report.last
    assert report.legs == (FinalLeg("sip:bob@example.test", 200),
                           FinalLeg("sip:carol@example.test", 9999, 1000))
    # not the last report (NOTE 1: several reports may come)
    assert not parse_final_report(DOC.replace(b' last="true"', b"")).last


def test_build_round_trips_and_writes_the_namespace() -> None:
    report = FinalReport("id-1", (FinalLeg("sip:a@x", 200), FinalLeg("sip:b@x", 9999, 5),
                                  FinalLeg("sip:c@x", 408)), last=True)
    doc = report.to_bytes()
    assert f'<final xmlns="{FINAL_REPORT_NS}" Message-ID="id-1" last="true">'.encode() in doc
    assert b'<leg uri="sip:b@x" status="9999" max-size="5"/>' in doc
    assert parse_final_report(doc) == report


@pytest.mark.parametrize("bad", [
    b"", b"<final/>",                                           # no namespace
    b'<other xmlns="urn:oma:xml:poc:final-report"/>',
    b'<final xmlns="urn:oma:xml:poc:final-report"><leg status="200"/></final>',   # no uri
    b'<final xmlns="urn:oma:xml:poc:final-report"><leg uri="u" status="ok"/></final>',
    b'<final xmlns="urn:oma:xml:poc:final-report"><leg uri="u" status="1" max-size="-1"/>'
    b'</final>',
    b'<final xmlns="urn:oma:xml:poc:final-report" last="maybe"/>',
    b'<!DOCTYPE x [<!ENTITY a "b">]><final xmlns="urn:oma:xml:poc:final-report"/>',
])
def test_bad_documents_are_content_errors(bad: bytes) -> None:
    with pytest.raises(ContentError):
        parse_final_report(bad)


@given(st.binary(max_size=600) | st.builds(
    lambda a, b: DOC[:a] + b + DOC[a:], st.integers(0, len(DOC)), st.binary(max_size=20)))
def test_any_bytes_give_a_report_or_a_content_error(data: bytes) -> None:
    """The parser is total: a FinalReport or ContentError, never another exception."""
    try:
        report = parse_final_report(data)
    except ContentError:
        return
    assert isinstance(report, FinalReport)


def test_the_three_spellings_are_taken() -> None:
    """§5.7.1 / §5.7.2 ``application/vnd.oma.poc.final-report(+xml)``, §5.7.3
    ``application/vnd.oma.final-report+xml`` (what we send), O.1
    ``application/vnd.oma.final+xml``."""
    for ct in ("application/vnd.oma.poc.final-report+xml", "application/vnd.oma.final+xml",
               "Application/VND.oma.final-report+xml; charset=utf-8",
               "application/vnd.oma.poc.final-report"):
        assert is_final_report_type(ct)
    assert FINAL_REPORT_TYPES[0] == FINAL_REPORT_CONTENT_TYPE
    assert not is_final_report_type("application/xml") and not is_final_report_type(None)


def test_the_cpim_request_any_prefix() -> None:
    """§5.7.2 steps 1-2: ``NS: FR <urn:oma:xml:poc:final-report>``, ``FR.Final-Report:
    yes``; the header is found through whatever prefix the NS header binds."""
    cpim = build_im(sender="sip:a@x", recipient="sip:b@x", body=b"hi",
                    content_type="text/plain", message_id="m1", imdn=(),
                    date_time=CpimDateTime("2026-01-01T00:00:00Z"),
                    final_report=True).to_bytes()
    assert b"NS: FR <urn:oma:xml:poc:final-report>\r\n" in cpim
    assert b"FR.Final-Report: yes\r\n" in cpim
    assert final_report_requested(parse_cpim(cpim))
    other = cpim.replace(b"NS: FR <", b"NS: Rep <").replace(b"FR.Final", b"Rep.Final")
    assert final_report_requested(parse_cpim(other))
    assert not final_report_requested(parse_cpim(cpim.replace(b": yes", b": no")))
    unbound = cpim.replace(b"NS: FR <urn:oma:xml:poc:final-report>\r\n", b"")
    assert not final_report_requested(parse_cpim(unbound))


# --------------------------------------------------------------------------- MSRP REPORT body
def _bound() -> Pair:
    p = Pair()
    p.ca.attach(p.sa, 0.0)
    p.run()
    return p


def test_report_with_a_body_on_the_wire_and_received() -> None:
    """RFC 4975 §7.1.2: a REPORT MAY carry a body (informational; not chunked; never
    answered): To-Path the peer, Message-ID, Byte-Range, Status, Content-Type, the body
    whole; the receiver hands the body over with the REPORT."""
    p = _bound()
    req = p.cb.send_report(p.sb, "m123", MsrpStatus(200, "OK"), 0.0,
                           byte_range=ByteRange(1, 4000, 4000), body=DOC,
                           content_type=FINAL_REPORT_CONTENT_TYPE)
    p.run()
    (rep,) = [m for w in p.wire_ba for m in parse_stream(w)
              if isinstance(m, MsrpRequest) and m.method == "REPORT"]
    assert rep.tid == req.tid and rep.to_path == [A] and rep.from_path == [B]
    assert rep.message_id == "m123" and rep.byte_range == ByteRange(1, 4000, 4000)
    assert str(rep.status) == "000 200 OK" and rep.content_type == FINAL_REPORT_CONTENT_TYPE
    assert rep.body == DOC and rep.flag == "$"
    assert rep.headers.get("Success-Report") is None and rep.headers.get("Failure-Report") is None
    (got,) = p.of(p.ea, ReportReceived)
    assert got.body == DOC and got.request.message_id == "m123"
    # §7.1.2: nobody answers a REPORT
    assert not [m for w in p.wire_ab for m in parse_stream(w) if isinstance(m, MsrpResponse)]


def test_report_body_rules() -> None:
    p = _bound()
    with pytest.raises(LocalProtocolError):          # a body needs its Content-Type
        p.cb.send_report(p.sb, "m1", MsrpStatus(200), 0.0, body=b"<x/>")
    with pytest.raises(LocalProtocolError):          # one request, bounded
        p.cb.send_report(p.sb, "m1", MsrpStatus(200), 0.0, body=b"x" * (MAX_REPORT_BODY + 1),
                         content_type="text/plain")
    unbound = MsrpSession(B, [A])
    with pytest.raises(LocalProtocolError):
        p.cb.send_report(unbound, "m1", MsrpStatus(200), 0.0)
    # a REPORT without a body still comes as before (empty body)
    p.cb.send_report(p.sb, "m2", MsrpStatus(408), 0.0)
    p.run()
    (plain,) = p.of(p.ea, ReportReceived)
    assert plain.body == b"" and plain.request.status == MsrpStatus(408)
    # a received REPORT body above the bound: dropped as a protocol violation, no answer
    big = make_request("t0009", "REPORT", [A], [B], [
        ("Message-ID", "m3"), ("Byte-Range", "1-*/*"), ("Status", "000 200 OK"),
        ("Content-Type", "text/plain")], b"y" * (MAX_REPORT_BODY + 10))
    evs = p.ca.receive_data(big.to_bytes(), 0.0)
    assert not p.of(evs, ReportReceived) and p.of(evs, ProtocolViolation)
    assert p.ca.data_to_send() == []
