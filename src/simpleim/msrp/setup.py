"""Who opens the MSRP connection, and to where (RFC 4975 §5.4/§6.2, RFC 6135, RFC 6714, RFC 4976).

:func:`plan_connection` is a pure function of the negotiated SDP values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simpleim.errors import LocalProtocolError, SdpError
from simpleim.msrp.uri import MsrpUri

__all__ = ["ConnectionPlan", "plan_connection", "resolve_setup", "SETUP_VALUES"]

SETUP_VALUES = ("active", "passive", "actpass", "holdconn")


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """``connect``: we open the TCP/TLS connection to ``host:port``; otherwise we wait for it.

    ``tls``: msrps URI or ``TCP/TLS/MSRP`` (RFC 4975 §6, §8.1).  ``host``/``port`` are the place
    to connect to (None when we are passive).  ``local_setup`` is the value we ended up with.
    """

    connect: bool
    host: str | None
    port: int | None
    tls: bool
    local_setup: str
    reason: str


def resolve_setup(offer: str | None, answer: str | None) -> tuple[str, str]:
    """Effective (offerer, answerer) roles: each ``active`` or ``passive``.

    RFC 6135 §4.1 + RFC 4145 §4.1: answer ``active`` <-> offerer passive and vice versa; an offer
    of ``actpass`` lets the answerer choose; the answerer MUST NOT answer ``actpass``.  Without
    ``a=setup`` in the answer (an RFC 4975-only peer) the RFC 4975 §5.4 rule holds: the
    offerer connects (RFC 6135 §4.2).  ``holdconn`` means no connection (RFC 4145 §4).
    """
    o = (offer or "actpass").lower()
    a = None if answer is None else answer.lower()
    for v in (o, a):
        if v is not None and v not in SETUP_VALUES:
            raise SdpError(f"unknown a=setup value {v!r}", where="a=setup")
    if a == "actpass":
        raise SdpError("a=setup:actpass is not allowed in an answer (RFC 4145 §4.1)",
                       where="a=setup")
    if "holdconn" in (o, a):
        return ("holdconn", "holdconn")
    if a is None:
        # RFC 6135 §4.2: legacy answerer -> offerer active (RFC 4975 §5.4), only possible if
        # the offer allowed it.
        if o == "passive":
            raise SdpError("offer is setup:passive but the answer has no a=setup",
                           where="a=setup")
        return ("active", "passive")
    if a == "active":
        if o == "active":
            raise SdpError("both ends setup:active", where="a=setup")
        return ("passive", "active")
    # a == "passive"
    if o == "passive":
        raise SdpError("both ends setup:passive", where="a=setup")
    return ("active", "passive")


def plan_connection(
    *,
    we_are_offerer: bool,
    offer_setup: str | None,
    answer_setup: str | None,
    remote_path: Sequence[MsrpUri],
    local_cema: bool = False,
    remote_cema: bool = False,
    remote_c_address: str | None = None,
    remote_m_port: int | None = None,
    remote_proto: str = "TCP/MSRP",
    relay_path: Sequence[MsrpUri] = (),
) -> ConnectionPlan:
    """Decide (who connects, to which host/port).

    * Own relay (RFC 4976 §5): a client behind a relay always connects to its relay - the first
      URI of its Use-Path - whatever ``a=setup`` says.
    * Otherwise RFC 6135 decides who connects (:func:`resolve_setup`).
    * The connecting side goes to the first URI of the peer's path (RFC 4975 §6.2) - or, when
      both ends put ``a=msrp-cema`` (RFC 6714 §4.1), to the SDP ``c=`` address and ``m=`` port,
      which a middlebox may have rewritten without touching the path URI.
    """
    if not remote_path and not relay_path:
        raise LocalProtocolError("no remote path to connect to")
    tls_proto = remote_proto.upper() == "TCP/TLS/MSRP"
    if relay_path:
        first = relay_path[0]
        return ConnectionPlan(True, first.host, first.effective_port, first.secure, "active",
                              "RFC 4976: connect to our own relay")
    offerer, answerer = resolve_setup(offer_setup, answer_setup)
    mine = offerer if we_are_offerer else answerer
    first = remote_path[0]
    tls = first.secure or tls_proto
    if mine == "holdconn":
        return ConnectionPlan(False, None, None, tls, mine, "setup:holdconn - no connection yet")
    if mine == "passive":
        return ConnectionPlan(False, None, None, tls, mine, "RFC 6135: the peer connects")
    if local_cema and remote_cema and remote_c_address and remote_m_port:
        # RFC 6714 §4.1: with CEMA the connection goes to the SDP c=/m= address.
        return ConnectionPlan(True, remote_c_address, remote_m_port, tls, mine,
                              "RFC 6714: CEMA, SDP c=/m= address")
    return ConnectionPlan(True, first.host, first.effective_port, tls, mine,
                          "RFC 4975 §6.2: first URI of the peer's path")
