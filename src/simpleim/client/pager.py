"""Pager mode (OMA SIMPLE IM §8.1-8.2, RFC 3428) and message content, sans-I/O.

* :func:`choose_mode`: pager below the 1300-byte limit, else large message mode (§8.1, §9).
* :func:`build_im`: an IM as ``message/cpim`` with the IMDN request headers (RFC 5438 §6).
* :func:`build_request`: an out-of-dialog request with the §8.1.1 headers.
* :func:`decode_body`: what an incoming MESSAGE / MSRP SEND carries: text, an IMDN or an
  is-composing document; ``text/plain`` from non-RCS peers is accepted too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from simpleim.content.cpim import CpimAddress, CpimDateTime, CpimMessage, build_cpim, parse_cpim
from simpleim.content.encoding import decode_body as decode_encoding
from simpleim.content.final_report import final_report_headers
from simpleim.content.imdn import (
    Imdn,
    NotificationType,
    Status,
    build_notification,
    notification_to_send,
    parse_imdn,
)
from simpleim.content.iscomposing import IsComposing, parse_iscomposing
from simpleim.errors import ContentError, SipParseError
from simpleim.sip.header_values import MediaType
from simpleim.sip.headers import Address
from simpleim.sip.message import Headers, SipRequest
from simpleim.sip.multipart import parse_multipart
from simpleim.sip.uri import parse_uri

from .features import SIP_IM, USER_AGENT

__all__ = [
    "PAGER_LIMIT",
    "choose_mode",
    "new_message_id",
    "new_tag",
    "new_call_id",
    "build_im",
    "build_request",
    "Decoded",
    "decode_body",
    "imdn_reply",
    "cpim_datetime",
    "normalize_uri",
    "sip_identity",
    "same_identity",
    "DEFAULT_ACCEPT_CONTACT",
    "DEFERRED_ID_HEADER",
    "DeferredInfo",
]

#: The header with which the IM server marks a stored message it re-sends (its Message-ID URI,
#: OMA SIMPLE IM §12.2.2.3; simpleim server's msilo-style delivery, docs/server.md).
DEFERRED_ID_HEADER = "Deferred-Message-ID"


@dataclass(frozen=True)
class DeferredInfo:
    """A message the server stored while we were offline (OMA §12): its Message-ID URI at
    the server and the time the server received it (the SIP Date header)."""

    message_id: str
    date: str | None = None

#: OMA SIMPLE IM §8.1: pager mode when the message is below 1300 bytes (RFC 3428 §7 limit).
PAGER_LIMIT = 1300
CPIM = "message/cpim"
IMDN_TYPE = "message/imdn+xml"
COMPOSING_TYPE = "application/im-iscomposing+xml"


#: OMA §8.1.1: Accept-Contact of a pager-mode MESSAGE.
DEFAULT_ACCEPT_CONTACT = f"*;{SIP_IM}"


def choose_mode(size: int, limit: int = PAGER_LIMIT) -> str:
    """``pager`` or ``large`` (§8.1 / §9 intro; the exact-1300 case is a spec defect,
    checklist C-PM-00: we treat 1300 bytes as still fitting)."""
    return "pager" if size <= limit else "large"


def new_message_id() -> str:
    # RFC 5438 §6.3: imdn.Message-ID MUST be globally unique (random, >= 64 bits).
    return secrets.token_urlsafe(12)


def new_tag() -> str:
    return secrets.token_hex(6)      # RFC 3261 §19.3: tags MUST be random, >= 32 bits


def normalize_uri(to: str, domain: str) -> str:
    """``bob`` -> ``sip:bob@<domain>``; ``bob@x`` -> ``sip:bob@x``; URIs unchanged."""
    to = to.strip()
    if to.startswith(("sip:", "sips:", "tel:")):
        return to
    if "@" not in to:
        return f"sip:{to}@{domain}"
    return f"sip:{to}"


def sip_identity(req: SipRequest) -> str:
    """The authenticated identity of a request's sender: the first P-Asserted-Identity
    (RFC 3325 §9.1, asserted by our proxy - the only source whose requests the agent accepts
    by default, see :mod:`simpleim.client.trust`), else the From URI."""
    try:
        pai = req.p_asserted_identity
    except SipParseError:
        pai = []
    if pai:
        return str(pai[0].uri)
    return str(req.from_addr.uri)


def group_relay(req: SipRequest) -> tuple[str, str | None]:
    """OMA §8.3.2.1 step 4: a pre-defined group's copy asserts the group (P-Asserted-
    Identity) and names the sender in Referred-By (both set by our server); (the sender,
    the group) for such a copy, else (:func:`sip_identity`, None)."""
    identity = sip_identity(req)
    referred = req.headers.get("Referred-By")
    if not referred or not req.headers.get("P-Asserted-Identity"):
        return identity, None
    try:
        by = str(Address.parse(referred, "Referred-By").uri)
    except SipParseError:
        return identity, None
    if same_identity(by, identity):
        return identity, None
    return by, identity


def _identity_key(uri: str) -> str:
    """Comparable form of an identity: no scheme/params, case-insensitive host."""
    text = uri.strip().strip("<>")
    for scheme in ("sips:", "sip:", "tel:", "im:", "pres:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
            break
    text = text.split(";", 1)[0].split("?", 1)[0]
    user, at, host = text.rpartition("@")
    return f"{user}@{host.lower().rstrip('.')}" if at else text.lower()


def same_identity(a: str, b: str) -> bool:
    """Whether two URIs name the same user (sip:/sips:/im: of one user@host match)."""
    return _identity_key(a) == _identity_key(b)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"  # RFC 3261 §8.1.1.4: globally unique


def cpim_datetime(now: datetime, fixed: str | None = None) -> CpimDateTime:
    """CPIM DateTime (RFC 3862 §5.6); ``fixed`` overrides it (peers with date bugs)."""
    if fixed:
        return CpimDateTime(fixed)
    return CpimDateTime.from_datetime(now.replace(microsecond=0))


def build_im(*, sender: str, recipient: str, body: bytes, content_type: str,
             message_id: str, imdn: tuple[str, ...], date_time: CpimDateTime,
             sender_name: str | None = None, final_report: bool = False) -> CpimMessage:
    """An IM as CPIM (RFC 3862) with ``imdn.Message-ID`` / ``Disposition-Notification``
    (RFC 5438 §6.3; OMA §8.1.1: SHALL request IMDN when the user wants delivery status);
    ``sender_name``: the From's display name (a chat alias); ``final_report``: ``NS: FR
    <urn:oma:xml:poc:final-report>`` and ``FR.Final-Report: yes`` (OMA §5.7.2 steps 1-2,
    §9.4.2 step 4)."""
    return build_cpim(from_addr=CpimAddress(sender, sender_name), to=[CpimAddress(recipient)],
                      body=body,
                      content_type=content_type, date_time=date_time, message_id=message_id,
                      disposition_notification=imdn,
                      extra_headers=final_report_headers() if final_report else ())


def build_request(method: str, *, target: str, from_uri: str, from_tag: str, call_id: str,
                  cseq: int = 1, contact: str | None = None, display_name: str | None = None,
                  body: bytes = b"", content_type: str | None = None,
                  accept_contact: str | None = DEFAULT_ACCEPT_CONTACT,
                  extra: tuple[tuple[str, str], ...] = ()) -> SipRequest:
    """An out-of-dialog request (RFC 3261 §8.1.1) carrying the OMA §8.1.1 / §7.1.1.1 headers:
    Accept-Contact ``*;+g.oma.sip-im`` and User-Agent."""
    h = Headers()
    h.add("Max-Forwards", "70")                      # RFC 3261 §8.1.1.6
    name = f'"{display_name}" ' if display_name else ""
    h.add("From", f"{name}<{from_uri}>;tag={from_tag}")
    h.add("To", f"<{target}>")
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method}")
    if contact is not None:
        h.add("Contact", contact)
    if accept_contact:
        h.add("Accept-Contact", accept_contact)      # RFC 3841 §9.2
    h.add("User-Agent", USER_AGENT)
    for k, v in extra:
        h.add(k, v)
    if body and content_type:
        h.add("Content-Type", content_type)
    return SipRequest(method, parse_uri(target), h, body)


@dataclass(frozen=True)
class Decoded:
    """An incoming body, classified.  ``kind``: ``text``, ``imdn``, ``composing``, ``other``."""

    kind: str
    sender: str | None         # the authenticated SIP identity (else the CPIM From)
    content_type: str
    payload: bytes
    cpim: CpimMessage | None = None
    imdn: Imdn | None = None
    composing: IsComposing | None = None
    #: the CPIM From when it names someone else than ``sender`` (RFC 3862 §7: the CPIM
    #: header is not authenticated; the message is shown as ``sender``'s, flagged)
    claimed_sender: str | None = None
    #: every IMDN of an aggregated notification (RFC 5438 §8.3: multipart/mixed of
    #: message/imdn+xml parts, from a URI-list exploder); ``imdn`` is the first
    imdns: tuple[Imdn, ...] = ()

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")

    @property
    def message_id(self) -> str | None:
        return self.cpim.imdn_message_id if self.cpim else None

    @property
    def disposition(self) -> tuple[str, ...]:
        return self.cpim.disposition_notification if self.cpim else ()


def _base(ctype: str | None) -> str:
    return (ctype or "").split(";", 1)[0].strip().lower()


def decode_body(content_type: str | None, body: bytes, *, content_encoding: str | None = None,
                sender: str | None = None) -> Decoded:
    """Classify a MESSAGE or MSRP body; raises :class:`ContentError` (415/400) when it cannot
    be understood.  Handles ``Content-Encoding: deflate/gzip`` (liblinphone) on the outer body
    and on the CPIM payload.  ``sender``: the authenticated SIP identity (:func:`sip_identity`
    or the session's peer); a CPIM From naming someone else is kept as ``claimed_sender``,
    never taken as the sender (issue 7 item 5)."""
    if content_encoding:
        body = decode_encoding(body, content_encoding)
    ctype = _base(content_type)
    cpim: CpimMessage | None = None
    claimed: str | None = None
    if ctype == CPIM:
        cpim = parse_cpim(body)
        payload = cpim.payload
        inner_enc = cpim.content_header("Content-Encoding")
        if inner_enc:
            payload = decode_encoding(payload, inner_enc)
        ctype = _base(cpim.content_type) or "text/plain"
        frm = cpim.from_addr
        if frm is not None:
            if sender is None:
                sender = frm.uri
            elif not same_identity(frm.uri, sender):
                claimed = frm.uri
    else:
        payload = body
    if ctype == IMDN_TYPE:
        return Decoded("imdn", sender, ctype, payload, cpim, imdn=parse_imdn(payload),
                       claimed_sender=claimed)
    if ctype == "multipart/mixed" and cpim is not None \
            and _base(cpim.content_disposition) == "notification":
        # RFC 5438 §8.3: an aggregated IMDN (one part per recipient)
        boundary = MediaType.parse(cpim.content_type or "").boundary or ""
        docs = tuple(parse_imdn(p.body) for p in parse_multipart(payload, boundary)
                     if p.content_type == IMDN_TYPE)
        if not docs:
            raise ContentError("aggregated IMDN without message/imdn+xml parts",
                               status=400, where="multipart/mixed")
        return Decoded("imdn", sender, IMDN_TYPE, payload, cpim, imdn=docs[0], imdns=docs,
                       claimed_sender=claimed)
    if ctype == COMPOSING_TYPE:
        return Decoded("composing", sender, ctype, payload, cpim,
                       composing=parse_iscomposing(payload), claimed_sender=claimed)
    if ctype.startswith("text/") or ctype == "":
        return Decoded("text", sender, ctype or "text/plain", payload, cpim,
                       claimed_sender=claimed)
    if ctype in ("application/sdp",):
        raise ContentError(f"unexpected {ctype} body", status=415, where="Content-Type")
    return Decoded("other", sender, ctype, payload, cpim, claimed_sender=claimed)


def list_message_part(req: SipRequest) -> tuple[str | None, bytes]:
    """The message of a copy from a URI-list exploder that carries the list as
    ``recipient-list-history`` (RFC 5365 §4.1, RFC 5364): its Content-Type and body; any
    other request: its own."""
    mt = req.media_type
    if mt is None or mt.mime != "multipart/mixed" or not mt.boundary:
        return req.content_type, req.body
    parts = parse_multipart(req.body, mt.boundary)
    kept = [p for p in parts if _base(p.headers.get("Content-Disposition")) not in
            ("recipient-list-history", "recipient-list")]
    if len(kept) != 1 or len(kept) == len(parts):
        return req.content_type, req.body
    return kept[0].headers.get("Content-Type") or "text/plain", kept[0].body


def imdn_reply(decoded: Decoded, kind: NotificationType, status: Status, *, me: str,
               date_time: CpimDateTime) -> CpimMessage | None:
    """The IMDN to send for ``decoded`` or None (RFC 5438 §7.2 recipient rules)."""
    cpim = decoded.cpim
    if cpim is None:
        return None
    outcome = notification_to_send(cpim, kind, status)
    if outcome is None:
        return None
    return build_notification(cpim, kind, outcome, from_addr=CpimAddress(me),
                              message_id=new_message_id(), date_time=date_time,
                              recipient_uri=me)


def contact_uri_of(addr: Address) -> str:
    return str(addr.uri)
