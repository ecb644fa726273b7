"""The Final Delivery Report end to end (OMA SIMPLE IM §5.7.2, §5.7.3, §9.4.5, Appendix O):
a large message with ``FR.Final-Report: yes`` to a URI list through the in-process server;
the members' copies ask for MSRP reports, the Controlling Function collects them and sends
the originator one report - asserted on the wire."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from client_helpers import DOMAIN, client_config, running_server, wait_event
from simpleim.client import Account
from simpleim.client.events import Event, FinalReportEvent, MessageEvent
from simpleim.client.pager import build_im
from simpleim.content.cpim import parse_cpim
from simpleim.content.final_report import (
    FINAL_REPORT_CONTENT_TYPE,
    final_report_requested,
    parse_final_report,
)
from simpleim.msrp import MsrpRequest
from simpleim.sdp import MsrpMedia, parse_sdp
from simpleim.server.controlling.finalreport import (
    collect_legs,
    no_session_status,
    wants_final_report,
    wants_msrp_reports,
)
from simpleim.server.media import MediaError, MediaMessage
from simpleim.sip.message import SipRequest
from test_client_cli import LONG, _env
from test_server_group_large import ALICE, BIG, BOB, CAROL, _sends, accounts
from wire import MsrpWire

DAVE = f"sip:dave@{DOMAIN}"


def _reports(msrp: MsrpWire, acc: object) -> list[MsrpRequest]:
    return [r for r in msrp.requests(acc.msrp, "REPORT") if r.body]  # type: ignore[attr-defined]


async def test_final_report_to_a_uri_list(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """bob takes the message (200); carol's answer says a=max-size:1000, below the message
    (9999 + max-size, not sent); dave is offline (deferred by the DMF: 408, our choice).
    alice's SEND carries the FR header and Success-Report: yes, so the report comes as an
    MSRP REPORT with the Appendix O document (§5.7.3 step 1), before her BYE."""
    msrp = MsrpWire(monkeypatch)
    # carol keeps at most 1000 bytes (her large-message answer says a=max-size:1000);
    # dave is a served user who is not registered
    async with accounts(tmp_path, ("alice", "bob", "carol"),
                        client={"carol": {"max_message_size": 1000}}) as (
            srv, _port, (alice, bob, carol), (a_w, _b_w, c_w)):
        assert srv.store is not None
        await srv.store.add_user("dave", DOMAIN, "dave-pw")
        media = srv.services.media                             # type: ignore[union-attr]
        assert media.msrp is not None
        msrp.watch(media.msrp.endpoint)
        for acc in (alice, bob, carol):
            msrp.watch(acc.msrp)
        result = await alice.pager.send_list(["bob", "carol", "dave"], BIG, final_report=True)
        assert result.mode == "large-list" and result.status == 200
        # §5.7.2 steps 1-3: alice's SEND, as the server received it
        (sent,) = [r for r in msrp.requests(media.msrp.endpoint)
                   if r.body and b"FR.Final-Report" in r.body]
        assert sent.headers.get("Success-Report") == "yes"
        assert b"NS: FR <urn:oma:xml:poc:final-report>" in (sent.body or b"")
        # §5.7.3 step 1: one REPORT with the document, Message-ID of alice's SEND: it is
        # the success REPORT she asked for (none without the document before it)
        (rep,) = _reports(msrp, alice)
        assert [r for r in msrp.requests(alice.msrp, "REPORT")] == [rep]
        assert rep.content_type == FINAL_REPORT_CONTENT_TYPE
        assert str(rep.status) == "000 200 OK" and rep.message_id == sent.message_id
        report = parse_final_report(rep.body or b"")
        assert report.last and report.message_id == sent.message_id
        legs = {leg.uri: (leg.status, leg.max_size) for leg in report.legs}
        assert legs == {BOB: (200, None), CAROL: (9999, 1000), DAVE: (408, None)}
        assert b'<leg uri="%s" status="9999" max-size="1000"/>' % CAROL.encode() in rep.body
        # the session stayed up for it: alice's BYE came after the report
        rep_seq = next(e.seq for e in msrp.entries(alice.msrp) if e.message is rep)
        bye_seq = next(e.seq for e in a_w.entries if e.direction == "out"
                       and isinstance(e.message, SipRequest) and e.message.method == "BYE")
        assert rep_seq < bye_seq
        # one FinalReportEvent per recipient, under alice's IM Message-ID
        seen: dict[str, FinalReportEvent] = {}

        def take(e: Event) -> bool:
            if isinstance(e, FinalReportEvent):
                seen[e.uri] = e
            return len(seen) == 3

        await wait_event(alice, take)
        assert {u: (e.status, e.max_size, e.last, e.message_id) for u, e in seen.items()} == {
            BOB: (200, None, True, result.message_id),
            CAROL: (9999, 1000, True, result.message_id),
            DAVE: (408, None, True, result.message_id)}
        # bob's copy: the sender's CPIM with the FR header kept, Success/Failure-Report yes
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == BIG
        (copy,) = _sends(msrp, bob)
        assert copy.headers.get("Success-Report") == "yes"
        assert copy.headers.get("Failure-Report") == "yes"
        whole = b"".join(r.body or b"" for r in msrp.requests(media.msrp.endpoint)
                         if r.message_id == sent.message_id)
        assert copy.body == whole                  # the sender's CPIM unchanged (§5.7.3)
        cpim = parse_cpim(copy.body or b"")
        assert final_report_requested(cpim) and cpim.imdn_message_id == result.message_id
        # bob's success REPORT reached the server (what gave his 200)
        assert [r for r in msrp.requests(media.msrp.endpoint, "REPORT")
                if r.message_id == copy.message_id and str(r.status) == "000 200 OK"]
        # carol: a=max-size:1000 in her answer, and no copy sent to her
        answer = c_w.responses("INVITE", 200)[-1]
        assert parse_sdp(answer.body).media[0].get("max-size") == "1000"
        assert not _sends(msrp, carol)
        # dave: stored for deferred delivery
        roles = srv.roles
        assert roles is not None
        assert roles.deferred.has_pending(f"dave@{DOMAIN}")


async def test_no_final_report_without_the_request(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without FR.Final-Report the copies ask for no MSRP reports and no report document
    reaches the sender."""
    msrp = MsrpWire(monkeypatch)
    async with accounts(tmp_path, ("alice", "bob", "carol")) as (
            _srv, _port, (alice, bob, carol), _wires):
        for acc in (alice, bob, carol):
            msrp.watch(acc.msrp)
        result = await alice.pager.send_list(["bob", "carol"], BIG)
        assert result.mode == "large-list" and result.status == 200
        for acc in (bob, carol):
            ev = await wait_event(acc, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == BIG
            (copy,) = _sends(msrp, acc)
            assert copy.headers.get("Success-Report") in (None, "no")
            assert b"Final-Report" not in (copy.body or b"")
        assert not _reports(msrp, alice)
        assert not [r for r in msrp.requests(alice.msrp) if r.body]
        assert not [e for e in alice.events.pending() if isinstance(e, FinalReportEvent)]


class _Silent:
    """A member session whose success REPORT never comes."""

    remote_media = MsrpMedia(port=1, proto="TCP/MSRP", path=(), accept_types=("*",))

    async def deliver(self, body: bytes, content_type: str, *,
                      headers: Sequence[tuple[str, str]] = ()) -> None:
        await asyncio.Event().wait()


class _Refusing(_Silent):
    async def deliver(self, body: bytes, content_type: str, *,
                      headers: Sequence[tuple[str, str]] = ()) -> None:
        raise MediaError(413, "stop")


async def test_bounded_wait_reports_the_missing_legs_408() -> None:
    """§5.7.3 last paragraph: every member is reported; one whose report did not
    come by the deadline (event-loop time) gets 408, a failure
    response its status; the sender's reports-or-SEND choice follows its Success-Report."""
    message = MediaMessage("message/cpim", b"x" * 10, "mid1",
                           (("Success-Report", "yes"),))
    legs = [(BOB, _Silent()), (CAROL, _Refusing())]
    got = await collect_legs(legs, message, (),  # type: ignore[arg-type]
                             asyncio.get_running_loop().time() + 0.3)
    assert [(leg.uri, leg.status) for leg in got] == [(BOB, 408), (CAROL, 413)]
    assert wants_msrp_reports(message)
    assert not wants_msrp_reports(MediaMessage("message/cpim", b"", "m", ()))
    assert not wants_final_report(message)                 # not CPIM with the header
    assert no_session_status(403) == 403 and no_session_status(480) == 408
    assert no_session_status(488) == 415


async def test_final_report_to_one_user(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """To one user there is no Controlling Function: bob's own success REPORT (RFC 4975
    §7.1.2, §5.7.5: asked by Success-Report: yes) is the one leg's final status."""
    msrp = MsrpWire(monkeypatch)
    async with accounts(tmp_path, ("alice", "bob")) as (_srv, _port, (alice, bob), _w):
        for acc in (alice, bob):
            msrp.watch(acc.msrp)
        result = await alice.pager.send("bob", "short, but with a final report",
                                        final_report=True)
        assert result.mode == "large" and result.status == 200
        (copy,) = _sends(msrp, bob)
        assert copy.headers.get("Success-Report") == "yes"
        assert copy.headers.get("Failure-Report") == "yes"
        assert b"FR.Final-Report: yes" in (copy.body or b"")
        (rep,) = msrp.requests(alice.msrp, "REPORT")
        assert rep.message_id == copy.message_id and str(rep.status) == "000 200 OK"
        ev = await wait_event(alice, lambda e: isinstance(e, FinalReportEvent))
        assert isinstance(ev, FinalReportEvent)
        assert (ev.uri, ev.status, ev.last, ev.message_id) == (BOB, 200, True,
                                                               result.message_id)
        got = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(got, MessageEvent) and got.mode == "large"


async def test_final_report_as_a_send_without_msrp_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """§5.7.3 step 2: the sender asked for no MSRP reports (no Success-Report): the report
    comes as an MSRP SEND of type application/vnd.oma.final-report+xml in its session."""
    msrp = MsrpWire(monkeypatch)
    async with accounts(tmp_path, ("alice", "bob", "carol")) as (
            _srv, _port, (alice, bob, carol), _w):
        for acc in (alice, bob, carol):
            msrp.watch(acc.msrp)
        cpim = build_im(sender=ALICE, recipient=f"sip:Exploder@{DOMAIN}", body=BIG.encode(),
                        content_type="text/plain", message_id="fr-send-1", imdn=(),
                        date_time=alice.now_cpim(), final_report=True).to_bytes()
        status = await alice.large.send(f"sip:Conference-Factory@{DOMAIN}", cpim,
                                        "fr-send-1", recipients=[BOB, CAROL],
                                        final_report=True, msrp_reports=False)
        assert status == 200
        assert not msrp.requests(alice.msrp, "REPORT")
        (doc,) = [r for r in msrp.requests(alice.msrp) if r.body]
        assert doc.content_type == FINAL_REPORT_CONTENT_TYPE
        report = parse_final_report(doc.body or b"")
        assert report.last
        assert {(leg.uri, leg.status) for leg in report.legs} == {(BOB, 200), (CAROL, 200)}
        seen = set()

        def take(e: Event) -> bool:
            if isinstance(e, FinalReportEvent) and e.message_id == "fr-send-1":
                seen.add((e.uri, e.status))
            return len(seen) == 2

        await wait_event(alice, take)
        assert seen == {(BOB, 200), (CAROL, 200)}


async def test_cli_send_final_report(tmp_path: Path) -> None:
    """``simpleim send bob carol TEXT --final-report``: large message mode, then one line
    per recipient of the final report: 'final-report STATUS RECIPIENT' (carol keeps at
    most 1000 bytes: 9999 with max-size)."""
    async with (
        running_server(tmp_path) as (_server, port),
        Account(client_config("bob", port, tmp_path, "tcp")) as bob,
        Account(client_config("carol", port, tmp_path, "tcp", max_message_size=1000)),
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simpleim", "send", "bob", "carol", BIG, "--final-report",
            "--proxy", f"tcp:127.0.0.1:{port}",
            env=_env(tmp_path, "alice"), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(LONG):
            out, err = await proc.communicate()
        lines = out.decode().splitlines()
        assert proc.returncode == 0, err.decode()
        assert lines[0].startswith("sent large-list ")
        assert sorted(lines[1:]) == [f"final-report 200 {BOB}",
                                     f"final-report 9999 {CAROL} max-size=1000"]
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == BIG
