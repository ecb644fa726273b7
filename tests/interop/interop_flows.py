"""SIPp call flows shared by the interop tests (run against Kamailio or simpleim server).

Each flow asserts what a correct registrar/proxy must produce on the wire and returns the SIPp
results for further checks. Port plan: UDP UAS 5080 / register 5079 / UAC 5081; TCP UAS 5082 /
register 5078 / UAC 5077; INVITE UAS 5088 / register 5087 / UAC 5089; REGISTER-only 5085 -> 5086.
"""

from __future__ import annotations

from dataclasses import dataclass

from interop_harness import DOMAIN, PASSWORDS, Sipp, SippResult


@dataclass(frozen=True)
class Ports:
    uas: int
    register: int
    uac: int


UDP_PORTS = Ports(uas=5080, register=5079, uac=5081)
TCP_PORTS = Ports(uas=5082, register=5078, uac=5077)
INVITE_PORTS = Ports(uas=5088, register=5087, uac=5089)


def register(
    sipp: Sipp,
    remote: str,
    *,
    user: str,
    contact_port: int,
    port: int,
    transport: str = "u1",
    name: str | None = None,
    expires: int = 300,
) -> SippResult:
    """REGISTER user@example.test -> contact 127.0.0.1:contact_port; the 401 must come first."""
    res = sipp.run(
        name or f"{user}-register-{port}", "uac_register.xml", remote=remote, port=port,
        transport=transport, service=user,
        keys={"domain": DOMAIN, "contact_port": contact_port, "expires": expires},
        auth=(user, PASSWORDS[user]), auth_uri=DOMAIN,
    )
    res.expect_success(1)
    statuses = [m.status for m in res.received() if m.is_response and m.status != 100]
    assert statuses == [401, 200], f"REGISTER answers {statuses}, expected [401, 200]"
    challenge = [m for m in res.received() if m.status == 401][0]
    www = challenge.header("WWW-Authenticate")
    assert www and www[0].lower().startswith("digest "), f"401 without Digest challenge: {www}"
    ok = [m for m in res.received() if m.status == 200][0]
    contacts = " ".join(ok.header("Contact"))
    assert f"127.0.0.1:{contact_port}" in contacts, f"200 to REGISTER lists {contacts!r}"
    return res


def message_flow(
    sipp: Sipp, remote: str, *, transport: str, calls: int = 2
) -> tuple[SippResult, SippResult]:
    """SIPp bob (UAS) registers, SIPp alice sends *calls* CPIM MESSAGEs (407 answered)."""
    tcp = transport == "t1"
    ports = TCP_PORTS if tcp else UDP_PORTS
    tag = "tcp" if tcp else "udp"
    bob = sipp.uas(f"bob-uas-{tag}", "uas_message.xml", port=ports.uas, transport=transport,
                   calls=calls)
    register(sipp, remote, user="bob", contact_port=ports.uas, port=ports.register,
             transport=transport, name=f"bob-register-{tag}")
    alice = sipp.run(
        f"alice-uac-{tag}", "uac_message_cpim_auth.xml", remote=remote, port=ports.uac,
        transport=transport, service="bob", keys={"domain": DOMAIN, "from": "alice"},
        auth=("alice", PASSWORDS["alice"]), auth_uri=f"bob@{DOMAIN}", calls=calls, rate=20,
    )
    alice.expect_success(calls)
    finals = [m.status for m in alice.received() if m.status != 100]
    assert finals.count(200) + finals.count(202) == calls, finals
    assert all(s in (401, 407, 200, 202) for s in finals), finals
    uas = sipp.finish(bob)
    uas.expect_success(calls)
    got = uas.received("MESSAGE")
    assert len(got) == calls, f"bob received {len(got)} MESSAGE(s), expected {calls}"
    sent_bodies = {m.header("Call-ID")[0]: m.body for m in alice.sent("MESSAGE")}
    for m in got:
        call_id = m.header("Call-ID")[0]
        assert m.body == sent_bodies.get(call_id), f"CPIM body changed in transit:\n{m.text}"
        assert m.header("From")[0].startswith(f"<sip:alice@{DOMAIN}>;tag="), m.header("From")
        assert m.header("To") == [f"<sip:bob@{DOMAIN}>"], m.header("To")
        assert m.transport == ("TCP" if tcp else "UDP")
        assert m.header("Content-Type") == ["message/cpim"], m.text
        assert "imdn.Message-ID:" in m.body and "hello from sipp #" in m.body, m.text
        vias = m.header("Via")
        assert len(vias) >= 2, f"proxied MESSAGE must carry the proxy's Via: {vias}"
        mf = m.header("Max-Forwards")
        assert mf and int(mf[0]) < 70, f"Max-Forwards not decremented: {mf}"
        assert not m.header("Proxy-Authorization"), "credentials for the proxy were forwarded"
    return alice, uas


def unreachable_flow(sipp: Sipp, remote: str, *, user: str) -> SippResult:
    """alice's MESSAGE to *user* (no binding, or no such user): 407, then 404 or 480."""
    res = sipp.run(
        f"alice-to-{user}", "uac_message_unreachable.xml", remote=remote, port=UDP_PORTS.uac,
        service=user, keys={"domain": DOMAIN, "from": "alice"},
        auth=("alice", PASSWORDS["alice"]), auth_uri=f"{user}@{DOMAIN}",
    )
    res.expect_success(1)
    return res


def invite_flow(
    sipp: Sipp, remote: str, *, proxy: str, transport: str = "u1"
) -> tuple[SippResult, SippResult]:
    """INVITE/200/ACK/BYE with an MSRP SDP offer through the proxy *proxy* (host:port).

    The proxy must Record-Route the INVITE, and SIPp alice's ACK and BYE must then carry a Route
    to it (RFC 3261 §12.2.1.1 / §16.6 step 4).
    """
    ports = INVITE_PORTS
    tag = "tcp" if transport == "t1" else "udp"
    bob = sipp.uas(f"bob-uas-invite-{tag}", "uas_invite_msrp.xml", port=ports.uas,
                   transport=transport, keys={"msrp_port": 2858}, calls=1)
    register(sipp, remote, user="bob", contact_port=ports.uas, port=ports.register,
             transport=transport, name=f"bob-register-invite-{tag}")
    alice = sipp.run(
        f"alice-uac-invite-{tag}", "uac_invite_msrp.xml", remote=remote, port=ports.uac,
        transport=transport, service="bob",
        keys={"domain": DOMAIN, "from": "alice", "msrp_port": 2857},
        auth=("alice", PASSWORDS["alice"]), auth_uri=f"bob@{DOMAIN}", calls=1,
    )
    alice.expect_success(1)
    uas = sipp.finish(bob)
    uas.expect_success(1)

    invite = uas.received("INVITE")
    assert invite, "bob got no INVITE"
    rr = " ".join(invite[0].header("Record-Route"))
    assert proxy in rr and "lr" in rr, f"INVITE at bob lacks the proxy's Record-Route: {rr!r}"
    assert "m=message 2857 TCP/MSRP *" in invite[0].body, invite[0].body
    assert "a=path:msrp://127.0.0.1:2857/" in invite[0].body, invite[0].body

    ok = [m for m in alice.received("INVITE") if m.status == 200]
    assert ok and "m=message 2858 TCP/MSRP *" in ok[0].body, "200 OK lost its SDP answer"
    acks = alice.sent("ACK")
    byes = alice.sent("BYE")
    assert acks and byes, "alice sent no ACK/BYE"
    for req in (acks[-1], byes[0]):
        route = " ".join(req.header("Route"))
        assert proxy in route, f"{req.method} without a Route to the proxy: {req.text}"
    assert uas.received("ACK") and uas.received("BYE"), "ACK/BYE did not reach bob"
    return alice, uas


# --------------------------------------------------------------------------- simpleim UA flows
# A minimal UA built on simpleim.transport.sip.SipEndpoint (+ its transaction layer) and
# simpleim.sip.auth.DigestClient, talking to a proxy (Kamailio or simpleim server).

CPIM_BODY = (
    b"From: <sip:alice@example.test>\r\n"
    b"To: <sip:bob@example.test>\r\n"
    b"DateTime: 2024-06-15T12:00:00Z\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: simpleim-interop-1\r\n"
    b"imdn.Disposition-Notification: positive-delivery\r\n"
    b"\r\n"
    b"Content-Type: text/plain;charset=utf-8\r\n"
    b"Content-Length: 20\r\n"
    b"\r\n"
    b"hello from simpleim\n"
)


def _headers(**extra: str) -> list[tuple[str, object]]:
    return [(k.replace("_", "-"), v) for k, v in extra.items()]


async def ua_register_and_receive(
    sipp: Sipp, proxy_port: int, *, transport: str, uac_port: int | None = None
) -> None:
    """A simpleim UA registers bob (answering 401); SIPp alice's CPIM MESSAGE reaches it."""
    import asyncio
    import secrets
    from typing import Any

    from simpleim.sip import SipRequest
    from simpleim.sip.auth import DigestClient
    from simpleim.transport.sip import IncomingRequest, SipEndpoint
    from simpleim.transport.sip_addr import ListenSpec, TransportAddr

    got: asyncio.Queue[Any] = asyncio.Queue()

    def handler(inc: IncomingRequest) -> None:
        if inc.method == "MESSAGE":
            inc.reply(200, to_tag=secrets.token_hex(4))
        else:
            inc.reply(405)
        got.put_nowait(inc)

    ep = SipEndpoint(handler)
    try:
        local = await ep.listen(ListenSpec(transport, "127.0.0.1", 0))
        proxy = TransportAddr(transport, "127.0.0.1", proxy_port)
        tparam = ";transport=tcp" if transport == "tcp" else ""
        reg = SipRequest("REGISTER", f"sip:{DOMAIN}", _headers(
            Max_Forwards="70",
            From=f"<sip:bob@{DOMAIN}>;tag={secrets.token_hex(4)}",
            To=f"<sip:bob@{DOMAIN}>",
            Call_ID=f"{secrets.token_hex(8)}@127.0.0.1",
            CSeq="1 REGISTER",
            Contact=f"<sip:bob@127.0.0.1:{local.port}{tparam}>",
            Expires="300",
        ))
        resp = await asyncio.wait_for(
            ep.request(reg, proxy, auth=DigestClient("bob", PASSWORDS["bob"])), 15)
        assert resp.status == 200, f"REGISTER: {resp.status} {resp.reason}"
        assert f"127.0.0.1:{local.port}" in " ".join(resp.headers.get_all("Contact"))
        assert reg.cseq.seq == 2, "the 401 was not answered with a new CSeq"

        tcp = transport == "tcp"
        alice = await asyncio.to_thread(
            sipp.run, f"alice-uac-{transport}", "uac_message_cpim_auth.xml",
            remote=f"127.0.0.1:{proxy_port}",
            port=uac_port or (TCP_PORTS.uac if tcp else UDP_PORTS.uac),
            transport="t1" if tcp else "u1", service="bob",
            keys={"domain": DOMAIN, "from": "alice"},
            auth=("alice", PASSWORDS["alice"]), auth_uri=f"bob@{DOMAIN}",
        )
        alice.expect_success(1)
        inc = await asyncio.wait_for(got.get(), 5)
        msg = inc.request
        assert msg.method == "MESSAGE"
        assert msg.content_type == "message/cpim"
        assert b"hello from sipp #" in msg.body and b"imdn.Message-ID:" in msg.body
        assert len(msg.via) == 2 and msg.from_addr.uri.user == "alice"
        assert inc.source.transport == transport
    finally:
        await ep.close()


async def ua_send_message(sipp: Sipp, proxy_port: int, *, transport: str) -> None:
    """SIPp bob's UAS registers; a simpleim UA sends alice's CPIM MESSAGE (answering 407)."""
    import asyncio
    import secrets

    from simpleim.sip import SipRequest
    from simpleim.sip.auth import DigestClient
    from simpleim.transport.sip import SipEndpoint
    from simpleim.transport.sip_addr import ListenSpec, TransportAddr

    tcp = transport == "tcp"
    ports = TCP_PORTS if tcp else UDP_PORTS
    sipp_transport = "t1" if tcp else "u1"
    bob = sipp.uas(f"bob-uas-{transport}", "uas_message.xml", port=ports.uas,
                   transport=sipp_transport, calls=1)
    reg = await asyncio.to_thread(
        sipp.run, f"bob-register-{transport}", "uac_register.xml",
        remote=f"127.0.0.1:{proxy_port}", port=ports.register, transport=sipp_transport,
        service="bob", keys={"domain": DOMAIN, "contact_port": ports.uas, "expires": 300},
        auth=("bob", PASSWORDS["bob"]), auth_uri=DOMAIN,
    )
    reg.expect_success(1)

    ep = SipEndpoint(None)
    try:
        await ep.listen(ListenSpec(transport, "127.0.0.1", 0))
        proxy = TransportAddr(transport, "127.0.0.1", proxy_port)
        req = SipRequest("MESSAGE", f"sip:bob@{DOMAIN}", _headers(
            Max_Forwards="70",
            From=f"<sip:alice@{DOMAIN}>;tag={secrets.token_hex(4)}",
            To=f"<sip:bob@{DOMAIN}>",
            Call_ID=f"{secrets.token_hex(8)}@127.0.0.1",
            CSeq="1 MESSAGE",
            Content_Type="message/cpim",
        ), CPIM_BODY)
        resp = await asyncio.wait_for(
            ep.request(req, proxy, auth=DigestClient("alice", PASSWORDS["alice"])), 15)
        assert resp.status == 200, f"MESSAGE: {resp.status} {resp.reason}"
        assert req.cseq.seq == 2, "the 407 was not answered (CSeq not incremented)"
    finally:
        await ep.close()

    uas = await asyncio.to_thread(sipp.finish, bob)
    uas.expect_success(1)
    got = uas.received("MESSAGE")
    assert len(got) == 1
    m = got[0]
    assert m.transport == transport.upper()
    assert m.header("Content-Type") == ["message/cpim"]
    assert "hello from simpleim" in m.body and "imdn.Message-ID: simpleim-interop-1" in m.body
    assert not m.header("Proxy-Authorization"), "the proxy forwarded alice's credentials"
    assert m.header("CSeq") == ["2 MESSAGE"]
