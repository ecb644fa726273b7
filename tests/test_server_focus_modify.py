"""A re-INVITE to the conference focus within a participant's session (OMA SIMPLE IM
§7.2.1.6, IMSpec-SMM-S-009; §7.2.1.11, CF-10): what the focus does today - an RFC 4028
session refresh, answered 200 with the SDP in use (the media unchanged), the group chat
going on - asserted on the wire."""

from __future__ import annotations

from pathlib import Path

from client_helpers import wait_event
from simpleim.client.events import GroupMessageEvent
from simpleim.sdp import parse_sdp
from test_server_conference import _joined, trio


async def test_reinvite_to_the_focus_is_a_session_refresh(tmp_path: Path) -> None:
    async with trio(tmp_path) as (_srv, (alice, bob, _carol), (a_w, _b, _c)):
        chat = await alice.groups.start(["bob", "carol"])
        await _joined(bob)
        first = a_w.responses("INVITE", 200, direction="in")[-1]
        await chat.refresh()
        reinvite = a_w.requests("INVITE")[-1]
        assert reinvite.call_id == first.call_id and reinvite.to_addr.tag
        assert reinvite.headers.get("Session-Expires", "").endswith("refresher=uac")
        ok = a_w.responses("INVITE", 200, direction="in")[-1]
        assert ok is not first and ok.cseq.seq > first.cseq.seq
        # the focus answers with the media in use: the same MSRP path and accept-types
        (m0,), (m1,) = parse_sdp(first.body).media, parse_sdp(ok.body).media
        assert m1.get("path") == m0.get("path")
        assert m1.get("accept-types") == m0.get("accept-types")
        # §7.2.1.11: Session-Expires in the 200 with refresher=uac (the timer restarted)
        assert (ok.headers.get("Session-Expires") or "").endswith("refresher=uac")
        # §7.2.1.6 step 2: the MSRP switch goes on with the same session
        await chat.send("after the refresh")
        ev = await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent)
                              and e.text == "after the refresh")
        assert isinstance(ev, GroupMessageEvent)
