"""The Controlling Function's pager-mode exploder, sans-I/O (OMA SIMPLE IM §8.3; RFC 5365
MESSAGE URI-list service; RFC 5364 copyControl; RFC 5438 §8 IMDN aggregation).

Pure logic, no clock and no I/O (``now`` comes in, deadlines go out):

* :func:`parse_list_message` checks a MESSAGE to the exploder URI (§8.3.1.1 steps 1, 5, 7,
  8 and RFC 5365 §4) and returns the message part and the recipients, or the :class:`Reply`
  that refuses it (400 with a reason, 413, 420, 486 + Warning 102, 403 + Warning 119);
* :func:`build_copy` makes the copy for one recipient (§8.3.2.1): Request-URI and To = the
  recipient, the sender's From, the authenticated originator in P-Asserted-Identity, the IM
  feature tag, the recipient list without ``bcc`` and anonymized entries as
  ``recipient-list-history`` (RFC 5365 §4.1), and for a CPIM message that asks for
  notifications ``imdn.IMDN-Record-Route`` (the exploder) and ``imdn.Original-To`` (the
  recipient as listed) so that the IMDNs come back here (RFC 5438 §6, §8);
* :class:`Aggregation` is the §8.3.1.2 / §8.3.1.3 state: one delivery status per recipient,
  complete when all arrived, otherwise reported when Timer Ts2 (§15.1) expires;
  :func:`aggregated_report` is the one IMDN to the sender (RFC 5438 §8.3: multipart/mixed of
  ``message/imdn+xml`` parts in a CPIM message with ``Content-Disposition: notification``).

The state machine of one exploded message (``(state, input) -> (state, action)``):

=================  ==========================  ===========  ================================
state              input                       new state    action (cite)
=================  ==========================  ===========  ================================
PLANNED            copies sent (statuses)      AGGREGATING  failure IMDNs kept (§8.3.1.4)
AGGREGATING        delivery IMDN of a member   AGGREGATING  kept (§8.3.1.2 step 2)
AGGREGATING        last member's IMDN          REPORTED     aggregated IMDN (§15.1 stop)
AGGREGATING        Ts2 expired                 REPORTED     aggregated IMDN (§8.3.1.3 1)
REPORTED           a late IMDN                 REPORTED     forwarded alone (§8.3.1.2 1)
=================  ==========================  ===========  ================================
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from simpleim.content.cpim import (
    IMDN_NS,
    CpimAddress,
    CpimDateTime,
    CpimHeader,
    CpimMessage,
    build_cpim,
    parse_cpim,
)
from simpleim.content.imdn import (
    IMDN_CONTENT_TYPE,
    DispositionRequest,
    Imdn,
    NotificationType,
    Status,
)
from simpleim.content.resource_lists import (
    RECIPIENT_LIST_DISPOSITION,
    RECIPIENT_LIST_MESSAGE,
    RESOURCE_LISTS_CONTENT_TYPE,
    CopyControl,
    Entry,
    ResourceLists,
    parse_resource_lists,
)
from simpleim.content.xml import XmlLimits
from simpleim.errors import ContentError, SimpleImError
from simpleim.server.roles import (
    W_ANONYMITY_NOT_ALLOWED,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
)
from simpleim.server.xdm.api import GroupDefinition, normalize_uri
from simpleim.sip.headers import Headers
from simpleim.sip.message import SipRequest
from simpleim.sip.multipart import MultipartPart, build_multipart, parse_multipart
from simpleim.sip.uri import SipUri, parse_uri

__all__ = [
    "EXPLODER_USER",
    "Aggregation",
    "AggregationState",
    "ExploderLimits",
    "ListMessage",
    "SessionTarget",
    "W_TOO_MANY_RECIPIENTS",
    "aggregated_report",
    "build_copy",
    "parse_group_message",
    "parse_list_message",
    "parse_session_message",
    "plain_copy",
]

#: Appendix F.2 convention (``<Name of OMA IM Function>@<hostname>``) for the exploder URI
#: (Appendix I ``EXPLODER-URI``).
EXPLODER_USER = "Exploder"
#: §8.3.1.1 step 8: the warning of a list above the local limit.
W_TOO_MANY_RECIPIENTS = "102 too many recipients"
#: RFC 5365 §4.1: the recipients see the list as ``recipient-list-history``.
HISTORY_DISPOSITION = "recipient-list-history; handling=optional"


@dataclass(frozen=True, slots=True)
class ExploderLimits:
    """Local policy of the exploder (documented in docs/server.md)."""

    host: str  # the served domain (Warning host, exploder URI)
    max_recipients: int = 100  # §8.3.1.1 step 8: above -> 486 + Warning 102
    max_list_bytes: int = 32 * 1024  # the recipient-list part; above -> 413
    max_message_bytes: int = 32 * 1024  # the message part; above -> 413 (large mode)
    allow_anonymity: bool = True  # §8.3.1.1 step 7
    ts2: float = 30.0  # §15.1 Timer Ts2 (seconds)


@dataclass(frozen=True, slots=True)
class ListMessage:
    """A MESSAGE to the exploder, checked: what goes to each recipient."""

    content_type: str  # of the message part (with parameters)
    body: bytes
    recipients: tuple[Entry, ...]  # flattened, each URI once (RFC 5365 §5)
    shown: ResourceLists  # the list as the recipients see it (RFC 5364 §4)
    anonymous: bool  # Privacy: id (§8.3.1.1 step 7)
    group: str | None = None  # a pre-defined group's URI (§8.3.2.1 step 4), None: ad-hoc

    @property
    def cpim(self) -> CpimMessage | None:
        if self.content_type.split(";", 1)[0].strip().lower() != "message/cpim":
            return None
        try:
            return parse_cpim(self.body)
        except ContentError:
            return None

    def disposition(self) -> DispositionRequest:
        """The notifications the sender asked for (RFC 5438 §7.1.1); none for non-CPIM."""
        cpim = self.cpim
        return DispositionRequest.from_cpim(cpim) if cpim is not None else \
            DispositionRequest.parse(())


def _refuse(status: int, reason: str | None, host: str, text: str) -> Reply:
    return Reply(status, reason, (("Warning", im_warning(host, text)),))


def parse_list_message(req: SipRequest, limits: ExploderLimits) -> ListMessage | Reply:
    """§8.3.1.1 for an ad-hoc URI list: the checked message or the refusal."""
    host = limits.host
    require = [t.lower() for t in req.require]
    mt = req.media_type
    if RECIPIENT_LIST_MESSAGE not in require:
        # RFC 5365 §4: the UAC requires the extension; without it the list is not ours
        return _refuse(400, "Missing Require", host,
                       f"Require: {RECIPIENT_LIST_MESSAGE} expected")
    if mt is None or mt.mime != "multipart/mixed" or not mt.boundary:
        return _refuse(400, "Bad Request", host,
                       "multipart/mixed with a recipient list expected (RFC 5365 §4)")
    try:
        parts = parse_multipart(req.body, mt.boundary)
    except ContentError as exc:
        return _refuse(400, "Bad Request", host, f"bad multipart body: {exc.detail}")
    lists = [p for p in parts if _is_recipient_list(p)]
    others = [p for p in parts if not _is_recipient_list(p)]
    if len(lists) != 1 or len(others) != 1:
        return _refuse(400, "Bad Request", host,
                       "exactly one recipient-list part and one message part expected")
    list_part, message = lists[0], others[0]
    if len(list_part.body) > limits.max_list_bytes:
        return _refuse(413, None, host, f"recipient list above {limits.max_list_bytes} bytes")
    if len(message.body) > limits.max_message_bytes:
        return _refuse(413, None, host,
                       f"message above {limits.max_message_bytes} bytes: use large message mode")
    try:
        doc = parse_resource_lists(list_part.body, XmlLimits(max_size=limits.max_list_bytes))
    except ContentError as exc:
        if exc.status == 413:
            return _refuse(413, None, host, f"recipient list too large: {exc.detail}")
        return _refuse(400, "Bad Request", host, f"bad recipient list: {exc.detail}")
    recipients = doc.recipients()
    if not recipients:
        return _refuse(400, "Bad Request", host, "empty recipient list")
    if len(recipients) > limits.max_recipients:
        # §8.3.1.1 step 8 (ad-hoc group above the local maximum)
        return _refuse(486, None, host, W_TOO_MANY_RECIPIENTS)
    for entry in recipients:
        try:
            uri = parse_uri(entry.uri, "resource-lists/entry")
        except SimpleImError as exc:
            return _refuse(400, "Bad Request", host, f"bad recipient URI: {exc}")
        if not isinstance(uri, SipUri) or not uri.user:
            return _refuse(400, "Bad Request", host, f"not a SIP user URI: {entry.uri[:80]}")
    anonymous = "id" in [p.strip().lower() for v in req.headers.get_all("Privacy")
                         for p in v.split(";")]
    if anonymous and not limits.allow_anonymity:
        return _refuse(403, None, host, W_ANONYMITY_NOT_ALLOWED)  # §8.3.1.1 step 7
    ctype = message.headers.get("Content-Type") or "text/plain"
    return ListMessage(ctype, message.body, recipients, doc.for_recipients(), anonymous)


def parse_group_message(req: SipRequest, group: GroupDefinition, sender: str,
                        limits: ExploderLimits) -> ListMessage | Reply:
    """§8.3.1.1 for a MESSAGE to a pre-defined group's URI from ``sender`` (a SIP URI): 404
    without IM in ``<supported-services>`` (step 2, §11.2), 403 + 127 for a sender who is
    neither a member nor let in by ``<join-handling>`` (step 5), 403 + 119 for ``Privacy:
    id`` without ``<allow-anonymity>`` (step 6), 413 above the message bound; the members
    but the sender are the recipients (§8.3.2.1 step 7b)."""
    host = limits.host
    if not group.supports_im:
        return Reply(404)
    perms = group.permissions(sender)
    if not (group.is_member(sender) or perms.join_handling):
        return _refuse(403, None, host, W_SERVICE_NOT_AUTHORISED)
    anonymous = _anonymity(req, perms.allow_anonymity, limits)
    if isinstance(anonymous, Reply):
        return anonymous
    key = normalize_uri(sender)
    recipients = tuple(Entry(m.uri, m.display_name) for m in group.members
                       if normalize_uri(m.uri) != key)
    return ListMessage(req.content_type or "text/plain", req.body, recipients,
                       ResourceLists(()), anonymous, group=group.uri)


def _anonymity(req: SipRequest, allowed: bool, limits: ExploderLimits) -> bool | Reply:
    """Whether a MESSAGE to a group or session asks for anonymity (``Privacy: id``); 403 +
    119 when that is not ``allowed`` (§8.3.1.1 steps 6-7), 413 above the message bound."""
    asked = "id" in [p.strip().lower() for v in req.headers.get_all("Privacy")
                     for p in v.split(";")]
    if asked and not allowed:
        return _refuse(403, None, limits.host, W_ANONYMITY_NOT_ALLOWED)
    if len(req.body) > limits.max_message_bytes:
        return _refuse(413, None, limits.host,
                       f"message above {limits.max_message_bytes} bytes: use large message mode")
    return asked


@dataclass(frozen=True, slots=True)
class SessionTarget:
    """Who a MESSAGE to the IM Session Identity of an on-going session goes to (§8.3.2.1
    step 7c): the session's other participants; ``anonymous``: the sender takes part in
    it anonymously (§7.2.3.2), so the copies do not name it either."""

    conference: str
    recipients: tuple[Entry, ...]
    anonymous: bool = False


def parse_session_message(req: SipRequest, target: SessionTarget,
                          limits: ExploderLimits) -> ListMessage | Reply:
    """§8.3.1.1 for a MESSAGE to the IM Session Identity of ``target`` (steps 3 and 5 are
    the focus's: the session is on-going, the sender takes part): 403 + 119 for ``Privacy:
    id`` the operator does not allow (step 7), 413 above the message bound; the copies
    assert the session identity and name the sender in Referred-By (§8.3.2.1 step 5)."""
    asked = _anonymity(req, limits.allow_anonymity, limits)
    if isinstance(asked, Reply):
        return asked
    return ListMessage(req.content_type or "text/plain", req.body, target.recipients,
                       ResourceLists(()), asked or target.anonymous, group=target.conference)


def _is_recipient_list(part: MultipartPart) -> bool:
    disposition = (part.headers.get("Content-Disposition") or "").split(";", 1)[0]
    return part.content_type == RESOURCE_LISTS_CONTENT_TYPE and \
        disposition.strip().lower() == RECIPIENT_LIST_DISPOSITION


def _with_imdn_route(cpim: CpimMessage, exploder: str, recipient: str) -> CpimMessage:
    """RFC 5438 §6 / §8.1: IMDN-Record-Route = the exploder, Original-To = the recipient."""
    prefix = next((p for p, ns in cpim.namespaces.items() if ns == IMDN_NS and p), None)
    headers = list(cpim.headers)
    if prefix is None:
        prefix = "imdn"
        headers.append(CpimHeader("NS", f"imdn <{IMDN_NS}>"))
    headers += [CpimHeader(f"{prefix}.IMDN-Record-Route", f"<{exploder}>"),
                CpimHeader(f"{prefix}.Original-To", f"<{recipient}>")]
    return replace(cpim, headers=tuple(headers))


def build_copy(message: ListMessage, entry: Entry, *, from_value: str, originator: str,
               exploder: str, call_id: str, from_tag: str) -> SipRequest:
    """The MESSAGE for ``entry`` (§8.3.2.1 steps 1-3, 6; RFC 5365 §5)."""
    body, ctype = message.body, message.content_type
    cpim = message.cpim
    if cpim is not None and message.disposition().any:
        body = _with_imdn_route(cpim, exploder, entry.uri).to_bytes()
    if any(e.copy_control in (CopyControl.TO, CopyControl.CC)
           for e in message.shown.entries()):
        # RFC 5365 §4.1 / RFC 5364: who else got it (no bcc, anonymized entries hidden)
        body, ctype = build_multipart([
            MultipartPart.create(ctype, body),
            MultipartPart.create(RESOURCE_LISTS_CONTENT_TYPE, message.shown.to_bytes(),
                                 (("Content-Disposition", HISTORY_DISPOSITION),)),
        ])
    h = Headers()
    h.add("Max-Forwards", "70")
    if message.anonymous:
        h.add("From", f'"Anonymous" <sip:anonymous@anonymous.invalid>;tag={from_tag}')
    else:
        h.add("From", f"{from_value};tag={from_tag}")
        # §8.3.2.1 step 3, §5.1; for a pre-defined group step 4 (an on-going session step
        # 5): the group's (the session's) identity asserted, the sender in Referred-By
        h.add("P-Asserted-Identity", f"<{message.group or originator}>")
        if message.group is not None:
            h.add("Referred-By", f"<{originator}>")
    h.add("To", f"<{entry.uri}>")
    h.add("Call-ID", call_id)
    h.add("CSeq", "1 MESSAGE")
    h.add("Accept-Contact", "*;+g.oma.sip-im")  # §8.3.2.1 step 2
    h.add("Content-Type", ctype)
    return SipRequest("MESSAGE", entry.uri, h, body)


def plain_copy(copy: SipRequest) -> SipRequest | None:
    """The copy for a plain SIP client that refused ``message/cpim`` with 415 (RFC 3428
    §11, baresip): the CPIM payload alone when it is text, else None."""
    if (copy.content_type or "") != "message/cpim":
        return None
    try:
        cpim = parse_cpim(copy.body)
    except ContentError:
        return None
    ctype = cpim.content_type or "text/plain"
    if not ctype.lower().startswith("text/"):
        return None
    plain = copy.copy()
    plain.headers.set("Content-Type", ctype)
    plain.body = cpim.payload
    return plain


# ---------------------------------------------------------------- aggregation (§8.3.1.2)


class AggregationState(StrEnum):
    AGGREGATING = "aggregating"
    REPORTED = "reported"


_STATUS_OF_FAILURE = {403: Status.FORBIDDEN}


@dataclass(frozen=True)
class Aggregation:
    """The delivery notifications of one exploded message, until Ts2 (§15.1)."""

    id: str
    sender: str  # AOR of the sender
    sender_uri: str  # where the report goes (the CPIM From of the message)
    message_id: str  # imdn.Message-ID of the message
    datetime: str  # its CPIM DateTime
    deadline: float  # Ts2
    recipients: tuple[str, ...]
    positive: bool  # positive-delivery requested
    negative: bool  # negative-delivery requested
    results: tuple[tuple[str, str], ...] = ()  # (recipient, Status value)
    state: AggregationState = AggregationState.AGGREGATING
    request: bytes = field(default=b"", repr=False)  # the exploded MESSAGE, for a restart
    sent: bool = False  # every copy has been handed to its terminating PF

    @property
    def complete(self) -> bool:
        """§15.1 normal stop: a notification from every intended recipient."""
        got = {r for r, _ in self.results}
        return all(r in got for r in self.recipients)

    def waiting_for(self, recipient: str) -> bool:
        key = _key(recipient)
        return self.state is AggregationState.AGGREGATING and \
            any(_key(r) == key for r in self.recipients) and \
            all(_key(r) != key for r, _ in self.results)

    def with_status(self, recipient: str, status: Status) -> Aggregation:
        """§8.3.1.2 step 2 / §8.3.1.4 step 3: one more notification kept."""
        listed = next((r for r in self.recipients if _key(r) == _key(recipient)), recipient)
        return replace(self, results=(*self.results, (listed, status.value)))

    def with_failure(self, recipient: str, sip_status: int) -> Aggregation:
        """§8.3.1.4: a SIP failure of a copy becomes a failure notification."""
        return self.with_status(recipient, _STATUS_OF_FAILURE.get(sip_status, Status.FAILED))

    def reported(self) -> Aggregation:
        return replace(self, state=AggregationState.REPORTED)

    def to_json(self) -> str:
        return json.dumps({
            "sender_uri": self.sender_uri, "datetime": self.datetime,
            "recipients": list(self.recipients), "positive": self.positive,
            "negative": self.negative, "results": [list(r) for r in self.results],
            "state": self.state.value, "sent": self.sent,
            "request": base64.b64encode(self.request).decode("ascii")})

    @classmethod
    def from_json(cls, id_: str, sender: str, message_id: str, deadline: float,
                  text: str) -> Aggregation:
        try:
            d = json.loads(text)
            return cls(id_, sender, str(d["sender_uri"]), message_id, str(d["datetime"]),
                       deadline, tuple(str(r) for r in d["recipients"]),
                       bool(d["positive"]), bool(d["negative"]),
                       tuple((str(r), str(s)) for r, s in d["results"]),
                       AggregationState(d["state"]),
                       base64.b64decode(d["request"]), bool(d["sent"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ContentError(f"bad stored aggregation {id_}: {exc}", status=500,
                               where="imdn_aggregations") from None


def _key(uri: str) -> str:
    return uri.strip().strip("<>").lower()


def aggregated_report(agg: Aggregation, *, from_uri: str, message_id: str,
                      now: CpimDateTime) -> CpimMessage | None:
    """RFC 5438 §8.3: the notifications kept, one ``message/imdn+xml`` part per recipient
    (those the sender asked for: delivered if positive, failures if negative); None when
    there is nothing to report."""
    parts: list[MultipartPart] = []
    for recipient, value in agg.results:
        status = Status(value)
        if (status is Status.DELIVERED and not agg.positive) or \
                (status is not Status.DELIVERED and not agg.negative):
            continue
        doc = Imdn(agg.message_id, NotificationType.DELIVERY, status, agg.datetime,
                   recipient_uri=recipient, original_recipient_uri=recipient)
        parts.append(MultipartPart.create(IMDN_CONTENT_TYPE, doc.to_bytes()))
    if not parts:
        return None
    body, ctype = build_multipart(parts, boundary="imdn-boundary")
    return build_cpim(from_addr=CpimAddress(from_uri), to=[CpimAddress(agg.sender_uri)],
                      body=body, content_type=ctype, date_time=now, message_id=message_id,
                      content_disposition="notification")


def recipients_of(entries: Sequence[Entry]) -> tuple[str, ...]:
    return tuple(e.uri for e in entries)
