"""Registrar (RFC 3261 §10.3, RFC 3327 Path, RFC 5626 instance/reg-id, RFC 3840 tags).

Interface: ``await Registrar.handle(request, source) -> SipResponse``.  Authentication
(step 3) is done by the caller when configured (see :mod:`simpleim.server.app`) and the
authenticated user name is passed in; this module does steps 1-2 and 4-8.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from email.utils import formatdate

from simpleim.errors import SipParseError
from simpleim.server.config import ServerConfig
from simpleim.server.location import Binding, LocationService, aor_key, flow_of
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.uri import Params, SipUri
from simpleim.transport.sip_addr import TransportAddr

__all__ = ["OPTION_TAGS", "Registrar", "contact_header_value"]

log = logging.getLogger("simpleim.server.registrar")

# Contact parameters that describe the registration, not the UA's capabilities.
_REGISTRATION_PARAMS = frozenset({"expires", "q"})
# Extensions this registrar implements, advertised in Supported of every 200 (RFC 3261
# §20.37): RFC 3327 path (§5.3: Path stored, echoed when the UA supports it) and the
# RFC 3840 pref option tag (feature tags stored and returned, used by RFC 3841 caller
# preferences; OMA SIMPLE IM §5.2.1 clients send Require: pref) and RFC 5626 outbound
# (§6: a registration with +sip.instance and reg-id over TCP/TLS is bound to its flow,
# dropped when the flow dies; CRLF pings are answered, Flow-Timer is sent).  No flow
# tokens: this registrar is its users' first hop (an edge proxy's Path is honoured).
OPTION_TAGS = ("outbound", "path", "pref")
# RFC 3261 §10.3 step 7: 423 is only allowed for intervals shorter than one hour.
_ONE_HOUR = 3600


def _parse_q(value: str | None) -> float:
    # RFC 3261 §20.10 / §25.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    if value is None:
        return 1.0
    try:
        q = float(value)
    except ValueError:
        raise SipParseError(f"bad q value {value!r}", where="Contact") from None
    if not 0.0 <= q <= 1.0:
        raise SipParseError(f"q value out of range {value!r}", where="Contact")
    return q


def _parse_delta(value: str, where: str) -> int:
    # RFC 3261 §20.19: delta-seconds; RFC 4475 §3.1.2.4: an overlarge value may be treated
    # as the default, but it must at least be digits.
    value = value.strip()
    if not value.isdigit():
        raise SipParseError(f"bad expires value {value!r}", where=where)
    return min(int(value), 2**32 - 1)


def _format_q(q: float) -> str:
    text = f"{q:.3f}".rstrip("0").rstrip(".")
    return text if "." in text or text in ("0", "1") else text


def _response(req: SipRequest, status: int, reason: str | None = None) -> SipResponse:
    # RFC 3261 §8.2.6.2: a UAS adds a To tag to every response but 100 (the registrar is
    # the UAS of REGISTER; no dialog is created, so any tag will do).
    return req.create_response(status, reason, to_tag=secrets.token_hex(5))


def contact_header_value(b: Binding, now: float) -> str:
    """One Contact value of a 200 to REGISTER: the binding with its remaining expires
    (RFC 3261 §10.3 step 8) and its feature tags / instance / reg-id."""
    parts = [f"<{b.contact}>"]
    for name, value in b.params:
        if name in _REGISTRATION_PARAMS:
            continue
        parts.append(f";{name}" if value is None else f";{name}={value}")
    if b.q != 1.0:
        parts.append(f";q={_format_q(b.q)}")
    parts.append(f";expires={b.remaining(now)}")
    return "".join(parts)


class _AorLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Registrar:
    """Processes REGISTER requests for the configured domain."""

    def __init__(
        self,
        config: ServerConfig,
        location: LocationService,
        *,
        is_local_domain: Callable[[SipUri], bool],
    ) -> None:
        self._config = config
        self._location = location
        self._is_local = is_local_domain
        # One REGISTER per AOR at a time: steps 6-8 read the bindings, await the store and
        # write them back; two interleaved requests would lose one update.
        self._locks: dict[str, _AorLock] = {}

    async def handle(
        self,
        req: SipRequest,
        source: TransportAddr,
        *,
        auth_user: str | None = None,
    ) -> SipResponse:
        try:
            return await self._handle(req, source, auth_user)
        except SipParseError as exc:
            resp = _response(req, exc.status)
            resp.headers.add("Warning", f'399 {self._config.domain} "{exc.detail}"')
            return resp

    async def _handle(
        self, req: SipRequest, source: TransportAddr, auth_user: str | None
    ) -> SipResponse:
        cfg = self._config
        # §10.3 step 5: the To header field holds the address-of-record.
        to_uri = req.to_addr.uri
        if not isinstance(to_uri, SipUri):
            # RFC 4475 §3.3.4 (unksm2): a To URI of an unknown scheme cannot be an AOR.
            return self._reply(req, 400, "Bad Request", "To must be a sip or sips URI")
        if not self._is_local(to_uri) or to_uri.user is None:
            # §10.3 step 5: the AOR is not valid for the domain of the Request-URI -> 404.
            return self._reply(req, 404, "Not Found", "not an address-of-record of this domain")
        user = to_uri.user_unescaped or ""
        # §10.3 step 4: the authenticated user must be allowed to modify this AOR's bindings.
        if auth_user is not None and auth_user != user:
            return self._reply(req, 403, "Forbidden", "authenticated user does not own the AOR")
        aor = aor_key(user, cfg.domain)
        entry = self._locks.get(aor)
        if entry is None:
            entry = self._locks[aor] = _AorLock()
        entry.users += 1
        try:
            async with entry.lock:
                return await self._update(req, source, aor)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[aor]

    async def _update(self, req: SipRequest, source: TransportAddr, aor: str) -> SipResponse:
        cfg = self._config
        now = self._location.now()

        # §10.3 step 7: each contact's expires parameter, else the Expires header, else
        # the locally configured default.
        expires_header = req.headers.get("Expires")
        default_expires = cfg.default_expires
        if expires_header is not None:
            default_expires = _parse_delta(expires_header, "Expires")
        contact_values = req.headers.get_all("Contact")
        call_id = req.call_id
        cseq = req.cseq.seq
        current = {b.key: b for b in self._location.lookup(aor, now)}

        if any(v.strip() == "*" for v in contact_values):
            # §10.3 step 6: "*" is only allowed alone and with Expires: 0 (else 400).
            if len(contact_values) != 1 or expires_header is None or default_expires != 0:
                return self._reply(req, 400, "Bad Request", "Contact * needs Expires: 0")
            # §10.3 step 6: remove every binding unless a stored one has the same Call-ID
            # with a CSeq not lower than this request's.
            for b in current.values():
                if b.call_id == call_id and b.cseq >= cseq:
                    return self._reply(req, 500, "Server Internal Error", "CSeq out of order")
            await self._location.replace(aor, [])
            return self._ok(req, [], now)

        contacts = req.contacts
        path = tuple(req.headers.get_all("Path"))
        updates: list[tuple[Binding, int]] = []
        for addr in contacts:
            uri = addr.uri
            params: Params = addr.params
            expires_param = params.get("expires")
            expires = (
                _parse_delta(expires_param, "Contact expires")
                if expires_param is not None else default_expires
            )
            # §10.3 step 7: 0 < expires < one hour and < Min-Expires -> 423 Interval Too
            # Brief with Min-Expires (nothing is updated); a value above the local maximum
            # is lowered to it.
            if 0 < expires < min(cfg.min_expires, _ONE_HOUR):
                resp = _response(req, 423, "Interval Too Brief")
                resp.headers.add("Min-Expires", str(cfg.min_expires))
                return resp
            expires = min(expires, cfg.max_expires)
            instance = params.get("+sip.instance")
            reg_id_text = params.get("reg-id")
            reg_id: int | None = None
            if reg_id_text is not None:
                if not reg_id_text.isdigit():
                    raise SipParseError("bad reg-id", where="Contact")
                reg_id = int(reg_id_text)
            binding = Binding(
                aor=aor,
                contact=str(uri),
                expires_at=now + expires,
                q=_parse_q(params.get("q")),
                call_id=call_id,
                cseq=cseq,
                instance=instance,
                reg_id=reg_id,
                params=tuple((name.lower(), value) for name, value in params.items()),
                path=path,
                source=(source.transport, source.host, source.port),
            ).with_key()
            updates.append((binding, expires))

        merged = dict(current)
        for binding, expires in updates:
            # Compared with the *stored* binding: the same contact twice in one request is
            # processed in order (the last one wins), not refused as out of order.
            old = current.get(binding.key)
            if old is not None and old.call_id == call_id and old.cseq >= cseq:
                # §10.3 step 7: same Call-ID and a CSeq not higher than the stored one ->
                # the request is out of order: do not update, abort.
                return self._reply(req, 500, "Server Internal Error", "CSeq out of order")
            if expires == 0:
                merged.pop(binding.key, None)
            else:
                merged[binding.key] = binding
        if len(merged) > cfg.max_contacts and len(merged) > len(current):
            # Issue 7 item 8 (Kamailio registrar max_contacts): an AOR holds a bounded
            # number of bindings; nothing is updated.
            return self._reply(req, 403, "Too Many Contacts",
                               f"at most {cfg.max_contacts} contacts per address-of-record")
        if updates:
            # §10.3 step 7: the bindings are written (durably) before the response.
            stored = await self._location.replace(aor, merged.values())
        else:
            # §10.3: a REGISTER without Contact is a query of the current bindings.
            stored = sorted(current.values(), key=lambda b: -b.q)
        # RFC 3327 §5.3: the stored Path is returned in the 200 when the UA supports path.
        echo = updates and any(tag.lower() == "path" for tag in req.supported)
        resp = self._ok(req, stored, now, path if echo else ())
        if any(flow_of(b) is not None and expires > 0 for b, expires in updates):
            # RFC 5626 §6: the registrar that binds the flow says so with Require: outbound
            # and tells the UA how often to send keep-alives (§5.4 Flow-Timer).
            resp.headers.add("Require", "outbound")
            resp.headers.add("Flow-Timer", str(cfg.flow_timer))
        return resp

    async def flow_failed(self, flow: TransportAddr) -> list[Binding]:
        """RFC 5626 §5.3: the flow (TCP/TLS connection) died: the bindings bound to it are
        unreachable and are removed (store first), one AOR at a time like a REGISTER."""
        dropped: list[Binding] = []
        for aor in self._location.aors_on_flow(flow):
            entry = self._locks.get(aor)
            if entry is None:
                entry = self._locks[aor] = _AorLock()
            entry.users += 1
            try:
                async with entry.lock:
                    dropped += await self._location.drop_flow(aor, flow)
            finally:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[aor]
        for b in dropped:
            log.info("flow %s died: dropped binding %s of %s", flow, b.contact, b.aor)
        return dropped

    def _ok(
        self,
        req: SipRequest,
        bindings: list[Binding],
        now: float,
        path: tuple[str, ...] = (),
    ) -> SipResponse:
        resp = _response(req, 200, "OK")
        # §10.3 step 8: the 200 lists every current binding with its expires parameter
        # (the remaining time) and SHOULD carry a Date header field.
        for b in bindings:
            resp.headers.add("Contact", contact_header_value(b, now))
        # RFC 3327 §5.3: the registrar echoes the stored Path in the 200 (same order).
        for value in path:
            resp.headers.add("Path", value)
        # RFC 3261 §20.37: advertise the extensions we implement (path, pref).
        resp.headers.add("Supported", ", ".join(OPTION_TAGS))
        resp.headers.add("Date", formatdate(now, usegmt=True))
        return resp

    def _reply(self, req: SipRequest, status: int, reason: str, why: str) -> SipResponse:
        resp = _response(req, status, reason)
        resp.headers.add("Warning", f'399 {self._config.domain} "{why}"')
        return resp
