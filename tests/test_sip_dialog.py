"""SIP dialogs (RFC 3261 §12, §13.2.2.4, §15.1)."""

from __future__ import annotations

import pytest

from simpleim.errors import DialogError, LocalProtocolError
from simpleim.sip.dialog import Dialog, DialogId, DialogSet, DialogState, DialogTable
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.uri import SipUri


def invite(record_route: tuple[str, ...] = (), uri: str = "sip:bob@example.com") -> SipRequest:
    rr = "".join(f"Record-Route: {r}\r\n" for r in record_route)
    text = (
        f"INVITE {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-d1\r\n"
        "Max-Forwards: 70\r\n"
        f"{rr}"
        "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: dlg-1@192.0.2.1\r\n"
        "CSeq: 314 INVITE\r\n"
        "Contact: <sip:alice@192.0.2.1:5060>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def answer(
    req: SipRequest,
    status: int = 200,
    tag: str = "b1",
    contact: str | None = "<sip:bob@192.0.2.2:5062>",
    record_route: tuple[str, ...] = (),
) -> SipResponse:
    resp = req.create_response(status, to_tag=tag)
    for r in record_route:
        resp.headers.add("Record-Route", r)
    if contact:
        resp.headers.add("Contact", contact)
    return resp


RR = ("<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>")  # as seen at the UAS (p2 nearest)


def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    req = invite()
    d = Dialog.from_uac(req, answer(req, record_route=RR))
    assert d.id == DialogId("dlg-1@192.0.2.1", "a1", "b1")
    assert d.state is DialogState.CONFIRMED and d.is_uac
    assert [str(a.uri) for a in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(d.remote_target) == "sip:bob@192.0.2.2:5062"
    assert (d.local_seq, d.remote_seq) == (314, None)
    assert d.local_uri.tag is None and d.remote_uri.tag is None
    assert not d.secure


def test_uas_dialog_keeps_record_route_order() -> None:
    req = invite(record_route=RR)
    d = Dialog.from_uas(req, answer(req))
    assert d.id == DialogId("dlg-1@192.0.2.1", "b1", "a1")
    assert [str(a.uri) for a in d.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert str(d.remote_target) == "sip:alice@192.0.2.1:5060"
    assert (d.local_seq, d.remote_seq) == (None, 314)
    assert not d.is_uac
    assert d.local_contact is not None and str(d.local_contact.uri) == "sip:bob@192.0.2.2:5062"


def test_dialog_creation_errors() -> None:
    req = invite()
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(req, answer(req, status=486))
    with pytest.raises(DialogError) as info:
        Dialog.from_uac(req, answer(req, contact=None))
    assert info.value.status == 400
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(req, req.create_response(200))  # no To tag


def test_secure_flag_from_sips() -> None:
    req = invite(uri="sips:bob@example.com")
    assert Dialog.from_uac(req, answer(req)).secure


def test_in_dialog_request_loose_routing() -> None:
    req = invite()
    d = Dialog.from_uac(req, answer(req, record_route=RR))
    bye = d.create_request("BYE", via="SIP/2.0/UDP 192.0.2.1:5060")
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:bob@192.0.2.2:5062"  # §12.2.1.1: R-URI = remote target
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert (bye.cseq.seq, bye.cseq.method) == (315, "BYE")
    assert bye.from_addr.tag == "a1" and bye.to_addr.tag == "b1"
    assert bye.from_addr.display_name == "Alice"
    assert bye.call_id == "dlg-1@192.0.2.1" and bye.max_forwards == 70
    assert "Contact" not in bye.headers  # not a target refresh
    assert d.state is DialogState.TERMINATED  # §15.1.1
    with pytest.raises(LocalProtocolError):
        d.create_request("INFO")
    # Round trip through the wire format.
    assert parse_message(bye.to_bytes()).headers.get_all("Route") == bye.headers.get_all("Route")


def test_in_dialog_request_strict_routing() -> None:
    req = invite()
    strict = ("<sip:p2.example.com;transport=tcp;method=INVITE>", "<sip:p1.example.com>")
    d = Dialog.from_uac(req, answer(req, record_route=strict))
    info = d.create_request("INFO", body=b"x", content_type="text/plain")
    # §12.2.1.1: R-URI = first route (params not allowed in an R-URI stripped), Route = the
    # rest then the remote target.
    assert str(info.uri) == "sip:p1.example.com"
    assert info.headers.get_all("Route") == [
        "<sip:p2.example.com;transport=tcp;method=INVITE>", "<sip:bob@192.0.2.2:5062>"]
    assert info.headers.get("Content-Type") == "text/plain" and info.body == b"x"
    strict2 = ("<sip:p9.example.com;method=INVITE;maddr=10.0.0.9>",)
    d2 = Dialog.from_uac(req, answer(req, record_route=strict2))
    r2 = d2.create_request("INFO")
    assert isinstance(r2.uri, SipUri) and "method" not in r2.uri.params
    assert r2.uri.maddr == "10.0.0.9"


def test_empty_route_set_and_reinvite_carries_contact() -> None:
    req = invite()
    d = Dialog.from_uac(req, answer(req))
    reinv = d.create_request("INVITE")
    assert str(reinv.uri) == "sip:bob@192.0.2.2:5062" and "Route" not in reinv.headers
    assert [str(c.uri) for c in reinv.contacts] == ["sip:alice@192.0.2.1:5060"]
    assert reinv.cseq.seq == 315
    # §12.2.1.2: a 2xx to the re-INVITE with a new Contact refreshes the remote target.
    d.receive_response(reinv, answer(reinv, contact="<sip:bob@198.51.100.3>"))
    assert str(d.remote_target) == "sip:bob@198.51.100.3"
    d.receive_response(reinv, answer(reinv, status=481, contact=None))
    assert d.state is DialogState.TERMINATED


def test_ack_for_2xx_keeps_invite_cseq() -> None:
    req = invite()
    d = Dialog.from_uac(req, answer(req, record_route=RR))
    ack = d.create_ack(314, via="SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-ack")
    assert (ack.cseq.seq, ack.cseq.method) == (314, "ACK")
    assert d.local_seq == 314  # not incremented (§13.2.2.4)
    assert str(ack.uri) == "sip:bob@192.0.2.2:5062"
    assert len(ack.headers.get_all("Route")) == 2
    with pytest.raises(LocalProtocolError):
        d.create_request("ACK")
    with pytest.raises(LocalProtocolError):
        d.create_request("CANCEL")


def test_uas_in_dialog_cseq_checks_and_target_refresh() -> None:
    req = invite()
    d = Dialog.from_uas(req, answer(req))
    table = DialogTable()
    table.add(d)
    uac = Dialog.from_uac(req, answer(req))
    info = uac.create_request("INFO")
    assert table.match_request(info) is d and d.remote_seq == 315
    # §12.2.2: lower CSeq -> 500.
    old = uac.create_request("INFO", cseq=300)
    with pytest.raises(DialogError) as err:
        table.match_request(old)
    assert err.value.status == 500
    # ACK with the INVITE's CSeq is not out of order.
    assert table.match_request(uac.create_ack(314)) is d
    # §12.2.2: a re-INVITE with a new Contact replaces the remote target.
    reinv = uac.create_request("INVITE")
    reinv.headers.set("Contact", "<sip:alice@203.0.113.5:5070>")
    table.match_request(reinv)
    assert str(d.remote_target) == "sip:alice@203.0.113.5:5070"
    # Unknown To tag -> 481; no To tag -> not in a dialog.
    stranger = uac.create_request("INFO")
    stranger.headers.set("To", "<sip:bob@example.com>;tag=zzz")
    with pytest.raises(DialogError) as err:
        table.match_request(stranger)
    assert err.value.status == 481
    assert table.match_request(invite()) is None
    # BYE terminates the dialog; later requests get 481.
    table.match_request(uac.create_request("BYE"))
    assert d.state is DialogState.TERMINATED
    with pytest.raises(DialogError):
        d.receive_request(info)
    assert table.purge() == [d] and len(table) == 0


def test_dialog_set_early_then_confirmed_recomputes_route_set() -> None:
    req = invite()
    dset = DialogSet(req)
    assert dset.key == ("dlg-1@192.0.2.1", "a1")
    assert dset.receive_response(req.create_response(100)) is None
    assert dset.receive_response(req.create_response(180)) is None  # no To tag
    early = dset.receive_response(answer(req, 183, record_route=("<sip:old.example.com;lr>",)))
    assert early is not None and early.state is DialogState.EARLY
    assert dset.receive_response(answer(req, 180)) is early
    ok = dset.receive_response(answer(req, 200, record_route=RR, contact="<sip:bob@10.9.9.9>"))
    assert ok is early and early.state is DialogState.CONFIRMED
    # §13.2.2.4: the route set is recomputed from the 2xx.
    assert [str(a.uri) for a in early.route_set] == [
        "sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(early.remote_target) == "sip:bob@10.9.9.9"


def test_dialog_set_forked_2xx_make_two_dialogs() -> None:
    req = invite()
    dset = DialogSet(req)
    e1 = dset.receive_response(answer(req, 180, tag="x1"))
    e2 = dset.receive_response(answer(req, 180, tag="x2"))
    assert e1 is not None and e2 is not None and e1 is not e2
    d1 = dset.receive_response(answer(req, 200, tag="x1"))
    d3 = dset.receive_response(answer(req, 200, tag="x3"))  # fork with no early dialog
    assert d1 is e1 and d3 is not None and d3.state is DialogState.CONFIRMED
    assert {d.remote_tag for d in dset} == {"x1", "x2", "x3"}
    assert dset.get("x2") is e2 and e2.state is DialogState.EARLY
    # A retransmitted 2xx returns the same dialog.
    assert dset.receive_response(answer(req, 200, tag="x1")) is d1


def test_dialog_set_non2xx_terminates_early_dialogs() -> None:
    req = invite()
    dset = DialogSet(req)
    early = dset.receive_response(answer(req, 180))
    assert early is not None
    assert dset.receive_response(answer(req, 486)) is None
    assert early.state is DialogState.TERMINATED and dset.failed
    other = parse_message(answer(req).to_bytes())
    assert isinstance(other, SipResponse)
    other.headers.set("Call-ID", "another")
    with pytest.raises(DialogError):
        dset.receive_response(other)


def test_uas_confirm_and_early() -> None:
    req = invite()
    d = Dialog.from_uas(req, answer(req, 180))
    assert d.state is DialogState.EARLY
    d.confirm(answer(req, 200))
    assert d.state is DialogState.CONFIRMED
    with pytest.raises(LocalProtocolError):
        d.confirm(answer(req, 486))
    # The UAS's first request picks an initial local CSeq.
    info = d.create_request("INFO")
    assert info.cseq.seq == 1 and d.local_seq == 1
    assert info.from_addr.tag == "b1" and info.to_addr.tag == "a1"
    assert str(info.uri) == "sip:alice@192.0.2.1:5060"
