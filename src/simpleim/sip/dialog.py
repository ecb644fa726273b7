"""SIP dialogs (RFC 3261 §12, with §13.2.2.4 and §15.1): sans-I/O state and message builders.

A :class:`Dialog` holds the dialog state of §12 (id, local/remote sequence numbers, URIs and
tags, remote target, route set, secure flag), builds in-dialog requests (§12.2.1.1: loose
and strict routing) and the ACK for a 2xx (§13.2.2.4), and checks in-dialog requests
(§12.2.2).  A :class:`DialogSet` gathers the dialogs one INVITE created at a UAC (early
dialogs, forked 2xx responses; keyed by Call-ID + local tag).  A :class:`DialogTable` finds
the dialog of an incoming request or says 481.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from simpleim.errors import DialogError, LocalProtocolError
from simpleim.sip.headers import Address
from simpleim.sip.message import Headers, SipRequest, SipResponse
from simpleim.sip.uri import SipUri, Uri

__all__ = [
    "DialogState",
    "DialogId",
    "Dialog",
    "DialogSet",
    "DialogTable",
    "TARGET_REFRESH_METHODS",
]

# RFC 3261 §12.2 / RFC 3311 §5.1: requests that refresh the remote target.  (RFC 6665 adds
# SUBSCRIBE/NOTIFY for subscription dialogs, handled by the same code path.)
TARGET_REFRESH_METHODS: Final = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

# RFC 3261 §8.1.1.6: Max-Forwards SHOULD be 70.
_MAX_FORWARDS: Final = "70"
# RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31.
_MAX_INITIAL_CSEQ: Final = 2**31 - 1


class DialogState(enum.Enum):
    EARLY = "early"  # created by a 1xx with a To tag (RFC 3261 §12.1)
    CONFIRMED = "confirmed"  # created or confirmed by a 2xx (RFC 3261 §12.1)
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """RFC 3261 §12: Call-ID, local tag and remote tag (empty string for a missing tag)."""

    call_id: str
    local_tag: str
    remote_tag: str


def _tag(addr: Address) -> str:
    return addr.tag or ""


def _without_tag(addr: Address) -> Address:
    return addr.with_params(addr.params.without("tag"))


def _contact_uri(msg: SipRequest | SipResponse, what: str, *, required: bool) -> Uri | None:
    contacts = msg.contacts
    if not contacts:
        if required:
            # RFC 3261 §12.1.1 / §12.1.2: the remote target is the Contact URI.
            raise DialogError(f"{what} without Contact", status=400, where="Contact")
        return None
    return contacts[0].uri


class Dialog:
    """The state of one dialog (RFC 3261 §12).  Build with :meth:`from_uac` / :meth:`from_uas`."""

    def __init__(
        self,
        *,
        dialog_id: DialogId,
        state: DialogState,
        local_uri: Address,
        remote_uri: Address,
        remote_target: Uri,
        route_set: Iterable[Address],
        local_seq: int | None,
        remote_seq: int | None,
        secure: bool,
        is_uac: bool,
        local_contact: Address | None = None,
    ) -> None:
        self.id = dialog_id
        self.state = state
        self.local_uri = _without_tag(local_uri)
        self.remote_uri = _without_tag(remote_uri)
        self.remote_target = remote_target
        self.route_set: list[Address] = list(route_set)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.is_uac = is_uac
        self.local_contact = local_contact

    def __repr__(self) -> str:
        return f"<Dialog {self.id} {self.state.value}>"

    @property
    def call_id(self) -> str:
        return self.id.call_id

    @property
    def local_tag(self) -> str:
        return self.id.local_tag

    @property
    def remote_tag(self) -> str:
        return self.id.remote_tag

    # -- creation ------------------------------------------------------------------------------

    @classmethod
    def from_uac(
        cls,
        request: SipRequest,
        response: SipResponse,
        *,
        local_contact: Address | None = None,
        secure: bool | None = None,
    ) -> Dialog:
        """The UAC side of a dialog created by ``response`` to ``request`` (RFC 3261 §12.1.2).

        Route set: the response's Record-Route in *reverse* order; remote target: its
        Contact; local sequence number: the request's CSeq; remote one: empty; remote tag:
        the To tag of the response (empty if none, for RFC 2543 peers).
        """
        if not 101 <= response.status <= 299:
            raise LocalProtocolError("only a 101-299 response creates a dialog (§12.1)")
        target = _contact_uri(response, "dialog-creating response", required=True)
        if target is None:  # pragma: no cover - required=True raises
            raise DialogError("no Contact", status=400)
        state = DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY
        # §12.1.2: "the route set MUST be set to the list of URIs in the Record-Route header
        # field from the response, taken in reverse order and preserving all URI parameters".
        route_set = list(reversed(response.record_route))
        # §12.1.2: secure flag TRUE if the request was sent over TLS with a SIPS R-URI.
        if secure is None:
            secure = isinstance(request.uri, SipUri) and request.uri.secure
        return cls(
            dialog_id=DialogId(
                request.call_id, _tag(request.from_addr), _tag(response.to_addr)),
            state=state,
            local_uri=request.from_addr,
            remote_uri=response.to_addr,
            remote_target=target,
            route_set=route_set,
            local_seq=request.cseq.seq,  # §12.1.2
            remote_seq=None,  # §12.1.2: MUST be empty
            secure=secure,
            is_uac=True,
            local_contact=local_contact or (request.contacts[0] if request.contacts else None),
        )

    @classmethod
    def from_uas(
        cls,
        request: SipRequest,
        response: SipResponse,
        *,
        secure: bool | None = None,
    ) -> Dialog:
        """The UAS side of a dialog created by sending ``response`` to ``request`` (§12.1.1).

        ``response`` must carry our To tag (and SHOULD carry our Contact, §12.1.1).  Route
        set: the request's Record-Route in order; remote target: its Contact; remote
        sequence number: its CSeq; local sequence number: empty.
        """
        if not 101 <= response.status <= 299:
            raise LocalProtocolError("only a 101-299 response creates a dialog (§12.1)")
        local_tag = response.to_addr.tag
        if not local_tag:
            # §12.1.1: the UAS MUST add a To tag to the dialog-creating response.
            raise LocalProtocolError("the dialog-creating response needs a To tag (§12.1.1)")
        target = _contact_uri(request, "dialog-creating request", required=True)
        if target is None:  # pragma: no cover
            raise DialogError("no Contact", status=400)
        if secure is None:
            secure = isinstance(request.uri, SipUri) and request.uri.secure
        contacts = response.contacts
        return cls(
            dialog_id=DialogId(request.call_id, local_tag, _tag(request.from_addr)),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_uri=request.to_addr,
            remote_uri=request.from_addr,
            remote_target=target,
            # §12.1.1: "the route set MUST be set to the list of URIs in the Record-Route
            # header field from the request, taken in order and preserving all URI parameters".
            route_set=request.record_route,
            local_seq=None,  # §12.1.1: MUST be empty
            remote_seq=request.cseq.seq,  # §12.1.1
            secure=secure,
            is_uac=False,
            local_contact=contacts[0] if contacts else None,
        )

    # -- UAC: building requests ----------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"dialog {self.id} is terminated")

    def next_cseq(self) -> int:
        """Increment and return the local sequence number (§12.2.1.1)."""
        if self.local_seq is None:
            # §12.2.1.1 / §8.1.1.5: an empty local sequence number gets an initial value.
            self.local_seq = 1
        else:
            self.local_seq += 1
        return self.local_seq

    def _request_target(self) -> tuple[Uri, list[str]]:
        """Request-URI and Route header values (RFC 3261 §12.2.1.1)."""
        if not self.route_set:
            # §12.2.1.1: empty route set -> R-URI is the remote target, no Route.
            return self.remote_target, []
        first = self.route_set[0]
        first_uri = first.uri
        if isinstance(first_uri, SipUri) and first_uri.lr:
            # §12.2.1.1: loose router -> R-URI = remote target, Route = route set in order.
            return self.remote_target, [str(a) for a in self.route_set]
        # §12.2.1.1: strict router -> R-URI = first route URI stripped of parameters not
        # allowed in a Request-URI; Route = the rest of the route set, then the remote target.
        ruri: Uri = first_uri
        if isinstance(first_uri, SipUri):
            # RFC 3261 §19.1.1 Table 1: "method" and URI headers are not allowed in an R-URI.
            ruri = SipUri(
                first_uri.scheme, first_uri.user, first_uri.password, first_uri.host,
                first_uri.port, first_uri.params.without("method"), ())
        routes = [str(a) for a in self.route_set[1:]]
        routes.append(f"<{self.remote_target}>")
        return ruri, routes

    def create_request(
        self,
        method: str,
        *,
        via: str | None = None,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
    ) -> SipRequest:
        """A request within the dialog (RFC 3261 §12.2.1.1).

        To = remote URI + remote tag, From = local URI + local tag, Call-ID of the dialog,
        CSeq = local sequence number + 1 (``cseq`` overrides, used for ACK/CANCEL), Request-URI
        and Route from the remote target and route set, Contact for target refresh requests.
        ``via`` is the top Via value (without branch: the transaction layer adds one).
        Sending a BYE terminates the dialog (§15.1.1).
        """
        self._check_usable()
        if method == "ACK":
            raise LocalProtocolError("use create_ack() for the ACK of a 2xx (§13.2.2.4)")
        if method == "CANCEL":
            raise LocalProtocolError("CANCEL is built from the request it cancels (§9.1)")
        seq = self.next_cseq() if cseq is None else cseq
        req = self._build(method, seq, via, headers, body, content_type)
        if method == "BYE":
            # §15.1.1: the UAC MUST consider the dialog terminated once the BYE is passed to
            # the client transaction.
            self.state = DialogState.TERMINATED
        return req

    def create_ack(
        self,
        invite_cseq: int,
        *,
        via: str | None = None,
        headers: Iterable[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """The ACK for a 2xx to the INVITE with CSeq ``invite_cseq`` (RFC 3261 §13.2.2.4).

        Built like any in-dialog request except CSeq: the INVITE's number, method ACK (the
        local sequence number is not incremented).  The ACK is sent outside any transaction
        (:meth:`TransactionLayer.send_stateless`) and needs its own branch in ``via``.
        """
        self._check_usable()
        return self._build("ACK", invite_cseq, via, headers, body, content_type)

    def _build(
        self,
        method: str,
        seq: int,
        via: str | None,
        headers: Iterable[tuple[str, object]],
        body: bytes,
        content_type: str | None,
    ) -> SipRequest:
        ruri, routes = self._request_target()
        h = Headers()
        if via is not None:
            h.add("Via", via)
        h.add("Max-Forwards", _MAX_FORWARDS)  # §8.1.1.6
        for route in routes:
            h.add("Route", route)
        # §12.2.1.1: From = local URI + local tag, To = remote URI + remote tag.
        local = self.local_uri.with_tag(self.local_tag) if self.local_tag else self.local_uri
        remote = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
        h.add("From", local)
        h.add("To", remote)
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{seq} {method}")
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            # §12.2.1.1: a target refresh request SHOULD (INVITE: MUST, §13.2.1) carry Contact.
            h.add("Contact", self.local_contact)
        for name, value in headers:
            h.add(name, value)
        if body and content_type is not None:
            h.add("Content-Type", content_type)
        return SipRequest(method, ruri, h, body)

    # -- UAC: responses to our in-dialog requests ----------------------------------------------

    def receive_response(self, request: SipRequest, response: SipResponse) -> None:
        """Update the dialog for a response to one of our requests (RFC 3261 §12.2.1.2)."""
        status = response.status
        if status in (408, 481):
            # §12.2.1.2: a 481 or 408 to an in-dialog request SHOULD terminate the dialog.
            self.state = DialogState.TERMINATED
            return
        if 200 <= status < 300 and request.method in TARGET_REFRESH_METHODS:
            # §12.2.1.2: a 2xx to a target refresh request replaces the remote target.
            uri = _contact_uri(response, "2xx to a target refresh", required=False)
            if uri is not None:
                self.remote_target = uri

    def confirm(self, response: SipResponse) -> None:
        """An early dialog is confirmed by a 2xx (RFC 3261 §12.1, §13.2.2.4).

        At the UAC the route set is recomputed from the 2xx (§13.2.2.4) and the remote
        target taken from its Contact; at the UAS the 2xx is the one we send.
        """
        if not 200 <= response.status < 300:
            raise LocalProtocolError("only a 2xx confirms a dialog")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"dialog {self.id} is terminated")
        if self.is_uac and self.state is DialogState.EARLY:
            # §13.2.2.4: "the route set for the dialog MUST be recomputed based on the 2xx".
            self.route_set = list(reversed(response.record_route))
            uri = _contact_uri(response, "2xx", required=False)
            if uri is not None:
                self.remote_target = uri
        self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    # -- UAS: requests within the dialog -------------------------------------------------------

    def receive_request(self, request: SipRequest) -> None:
        """Check and apply an incoming in-dialog request (RFC 3261 §12.2.2).

        Raises :class:`DialogError` 481 if the dialog is terminated and 500 when the CSeq is
        lower than the remote sequence number (out of order).  Updates the remote sequence
        number and, for target refresh requests, the remote target; a BYE terminates the
        dialog (§15.1.2).
        """
        if self.state is DialogState.TERMINATED:
            raise DialogError("dialog is terminated", status=481)
        if request.method not in ("ACK", "CANCEL"):
            seq = request.cseq.seq
            if self.remote_seq is not None and seq < self.remote_seq:
                # §12.2.2: lower CSeq than the remote sequence number -> 500 (out of order).
                raise DialogError(
                    f"CSeq {seq} lower than {self.remote_seq}", status=500, where="CSeq")
            # §12.2.2: an empty remote sequence number is set; a higher one replaces it.
            self.remote_seq = seq
        if request.method in TARGET_REFRESH_METHODS:
            # §12.2.2: a target refresh request replaces the remote target with its Contact.
            uri = _contact_uri(request, "target refresh request", required=False)
            if uri is not None:
                self.remote_target = uri
        if request.method == "BYE":
            # §15.1.2: the UAS terminates the session and the dialog on a BYE.
            self.state = DialogState.TERMINATED


class DialogSet:
    """The dialogs created by one dialog-creating request at the UAC (RFC 3261 §12.1.2,
    §13.2.2.4): keyed by Call-ID + local tag, one dialog per remote tag (forking)."""

    def __init__(self, request: SipRequest, *, local_contact: Address | None = None) -> None:
        self.request = request
        self.call_id = request.call_id
        self.local_tag = _tag(request.from_addr)
        self.local_contact = local_contact
        self.dialogs: dict[str, Dialog] = {}
        self.failed = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.call_id, self.local_tag)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(self.dialogs.values())

    def __len__(self) -> int:
        return len(self.dialogs)

    def get(self, remote_tag: str) -> Dialog | None:
        return self.dialogs.get(remote_tag)

    def receive_response(self, response: SipResponse) -> Dialog | None:
        """Create or update the dialog for a response to the request (RFC 3261 §12.1.2).

        A 1xx with a To tag creates an early dialog; a 2xx confirms the early dialog with the
        same tag or creates a new confirmed one (forked 2xx, §13.2.2.4); a 300-699 terminates
        every early dialog (§12.3 / §13.2.2.3).  Returns the dialog concerned, or ``None``.
        """
        if response.call_id != self.call_id or _tag(response.from_addr) != self.local_tag:
            raise DialogError("response does not belong to this dialog set", status=481)
        status = response.status
        remote_tag = _tag(response.to_addr)
        if status >= 300:
            # §13.2.2.3 / §12.3: a non-2xx final terminates the early dialogs.
            self.failed = True
            for each in self.dialogs.values():
                if each.state is DialogState.EARLY:
                    each.terminate()
            return None
        if status < 200:
            if status == 100 or not remote_tag:
                return None  # §12.1: only a 1xx *with a To tag* creates an early dialog
            early = self.dialogs.get(remote_tag)
            if early is None:
                early = Dialog.from_uac(self.request, response, local_contact=self.local_contact)
                self.dialogs[remote_tag] = early
            return early
        dialog = self.dialogs.get(remote_tag)
        if dialog is None or dialog.state is DialogState.TERMINATED:
            # §13.2.2.4: a 2xx matching no dialog creates a new (confirmed) one.
            dialog = Dialog.from_uac(self.request, response, local_contact=self.local_contact)
            self.dialogs[remote_tag] = dialog
        elif dialog.state is DialogState.EARLY:
            dialog.confirm(response)
        return dialog


class DialogTable:
    """Live dialogs by id; finds the dialog of an incoming request (RFC 3261 §12.2.2)."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def purge(self) -> list[Dialog]:
        """Drop and return the terminated dialogs."""
        dead = [d for d in self._dialogs.values() if d.state is DialogState.TERMINATED]
        for d in dead:
            del self._dialogs[d.id]
        return dead

    @staticmethod
    def id_for_incoming(request: SipRequest) -> DialogId | None:
        """The dialog id of an incoming request at the UAS (§12.2.2): local tag = To tag,
        remote tag = From tag; ``None`` for a request outside any dialog (no To tag)."""
        to_tag = request.to_addr.tag
        if not to_tag:
            return None
        return DialogId(request.call_id, to_tag, _tag(request.from_addr))

    def match_request(self, request: SipRequest) -> Dialog | None:
        """The dialog of ``request``, ``None`` if it is outside a dialog (no To tag).

        Raises :class:`DialogError` 481 for a To tag that matches no dialog (§12.2.2), and
        whatever :meth:`Dialog.receive_request` raises (500 for an out-of-order CSeq).
        """
        dialog_id = self.id_for_incoming(request)
        if dialog_id is None:
            return None
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            # §12.2.2: a To tag that matches no existing dialog -> 481.
            raise DialogError("call/transaction does not exist", status=481, where="To")
        dialog.receive_request(request)
        return dialog
