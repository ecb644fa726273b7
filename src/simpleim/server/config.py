"""Configuration of the simpleim server: frozen dataclasses, parsed once, passed in.

Nothing here is global; the CLI builds a :class:`ServerConfig` and hands it to
:func:`simpleim.server.serve.run_server` (or :class:`simpleim.server.app.ImServer`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from simpleim.errors import ConfigError
from simpleim.timers import DEFAULT_TIMERS, Timers
from simpleim.transport.sip_addr import ListenSpec

__all__ = [
    "AUTH_ALGORITHMS",
    "DEFAULT_AUTH_ALGORITHMS",
    "ListenSpec",
    "ServerConfig",
    "parse_auth_algorithms",
    "parse_listen",
    "DEFAULT_SIP_PORT",
    "DEFAULT_SIPS_PORT",
    "TRANSPORTS",
    "LOG_FORMATS",
    "PF_MEDIA_MODES",
    "parse_host_port",
]

# RFC 3261 §19.1.2: default ports 5060 (udp/tcp) and 5061 (tls).
DEFAULT_SIP_PORT = 5060
DEFAULT_SIPS_PORT = 5061
TRANSPORTS = ("udp", "tcp", "tls")
LOG_FORMATS = ("text", "json")
#: PO-00: the terminating PF out of the media path (proxy) or in it (B2BUA).
PF_MEDIA_MODES = ("proxy", "b2bua")
# Digest algorithms the server can offer: those whose HA1 the store keeps (MD5, SHA-256)
# and their -sess variants (RFC 7616 §3.4.2: the session key derives from the same HA1).
AUTH_ALGORITHMS = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
# MD5 only by default: SIPp supports only MD5, and baresip 1.0.0 gives up ("Function not
# implemented") when a 401 also carries a SHA-256 challenge.  RFC 8760 §2.4: enable
# SHA-256 first (``sha-256,md5``) and RFC 8760 clients pick it.
DEFAULT_AUTH_ALGORITHMS: tuple[str, ...] = ("MD5",)


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"bad listen address {text!r}: missing ']'")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"bad listen address {text!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":", 1)
    elif text.count(":") > 1:
        # a bare IPv6 literal without a port
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"bad listen address {text!r}: empty host")
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ConfigError(f"bad port in listen address {text!r}")
        port = int(port_text)
    else:
        port = default_port
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"listen host must be an IP address, got {host!r}") from None
    return host, port


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``HOST[:PORT]`` (IPv6 in brackets) -> ``(ip, port)``; ``localhost`` is 127.0.0.1."""
    return _split_host_port(text.strip(), default_port)


def parse_listen(text: str) -> list[ListenSpec]:
    """``[udp:|tcp:|tls:]HOST[:PORT]`` -> listen specs; no prefix means UDP + TCP.

    IPv6 hosts are written in brackets: ``tcp:[::1]:5060``.
    """
    text = text.strip()
    transport: str | None = None
    lowered = text.lower()
    for name in TRANSPORTS:
        if lowered.startswith(name + ":"):
            transport = name
            text = text[len(name) + 1 :]
            break
    default_port = DEFAULT_SIPS_PORT if transport == "tls" else DEFAULT_SIP_PORT
    host, port = _split_host_port(text, default_port)
    if transport is None:
        return [ListenSpec("udp", host, port), ListenSpec("tcp", host, port)]
    return [ListenSpec(transport, host, port)]


def parse_auth_algorithms(text: str | Sequence[str]) -> tuple[str, ...]:
    """``md5,sha-256`` -> ``("MD5", "SHA-256")``: canonical names, order kept (the order of
    preference, RFC 8760 §2.4: one challenge per algorithm, most preferred first)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    canonical = {name.lower(): name for name in AUTH_ALGORITHMS}
    out: list[str] = []
    for item in items:
        name = canonical.get(item.strip().lower())
        if name is None:
            raise ConfigError(
                f"unknown digest algorithm {item.strip()!r}: use "
                + ", ".join(a.lower() for a in AUTH_ALGORITHMS)
            )
        if name in out:
            raise ConfigError(f"digest algorithm {name} given twice")
        out.append(name)
    if not out:
        raise ConfigError("at least one digest algorithm is needed")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the server needs; immutable after start."""

    domain: str = "localhost"
    listen: tuple[ListenSpec, ...] = (
        ListenSpec("udp", "127.0.0.1", DEFAULT_SIP_PORT),
        ListenSpec("tcp", "127.0.0.1", DEFAULT_SIP_PORT),
    )
    db_url: str = "sqlite:///simpleim.db"
    tls_cert: str | None = None
    tls_key: str | None = None
    log_level: str = "info"
    realm: str | None = None
    auth: bool = True
    # RFC 3261 §22.4 / RFC 8760 §2.4: digest algorithms offered, most preferred first (one
    # challenge each).  Canonical names from AUTH_ALGORITHMS.
    auth_algorithms: tuple[str, ...] = DEFAULT_AUTH_ALGORITHMS
    # RFC 3261 §10.3 step 7 / §20.23: registrar expiry bounds and default.
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    # Extra host names/addresses that mean "this server" besides the listen addresses.
    aliases: tuple[str, ...] = ()
    # RFC 3261 §16.6 step 11: Timer C etc. come from here.
    timers: Timers = field(default=DEFAULT_TIMERS)
    # RFC 3261 §18.1.1: maximum UDP message size we accept (513 above it, §21.5.14).
    max_message_size: int = 65535
    user_agent: str = "simpleim"
    # RFC 5626 §5.4: Flow-Timer sent in the 200 to an outbound REGISTER over TCP/TLS: the
    # UA pings at least this often; a flow silent for Flow-Timer + 10 s is closed and its
    # bindings dropped.
    flow_timer: int = 120
    # Operations (docs/server.md "Logs" / "Metrics"): log line format and destination
    # (None = stderr), and the HTTP listener of /healthz and /metrics (None = off).
    log_format: str = "text"
    log_file: str | None = None
    metrics_listen: str | None = None
    # --- limits (issue 7; docs/security.md lists each with its default) ---
    # Via entries accepted in a request (more: 400); each costs a line in every response.
    max_vias: int = 70
    # Live SIP transactions; beyond it new requests are answered 503 statelessly.
    max_transactions: int = 100_000
    # Key of the Record-Route stamps (issue 7 item 2); None: a random key per process, so
    # dialogs do not survive a restart.  Servers sharing dialogs share a key.
    route_key: str | None = None
    # Failed authentications (issue 7 item 6): per source / per user within the window
    # before a lockout of auth_lockout seconds (0 = no limit).
    auth_max_failures_source: int = 10
    auth_max_failures_user: int = 20
    auth_failure_window: float = 60.0
    auth_lockout: float = 300.0
    # Registrar / forking (issue 7 item 8): bindings per AOR, branches per request.
    max_contacts: int = 10
    max_branches: int = 10
    # Overload shedding (issue 7 item 7): new requests get 503 + Retry-After while more
    # than overload_max_pending requests are unanswered or the event loop lags more than
    # overload_max_lag seconds (0 turns that bound off).
    overload_max_pending: int = 2000
    overload_max_lag: float = 1.0
    # ... or while more than this fraction of the time goes to handling received messages
    # (then only requests without credentials are shed: those with credentials finish work
    # already begun).
    overload_max_busy: float = 0.85
    overload_retry_after: int = 2
    # TCP/TLS (issue 7 item 10): accepted connections in all and per source host, seconds a
    # message may stay incomplete (slowloris), seconds without traffic before closing.
    max_tcp_connections: int = 4096
    max_tcp_per_source: int = 64
    tcp_incomplete_timeout: float = 10.0
    tcp_idle_timeout: float = 3605.0
    # OMA SIMPLE IM §12.2.2.3 step 6 (DM-05): expiry of deferred messages: the default, and
    # the maximum an Expires header may ask for (above it the default applies).
    deferred_default_expiry: int = 7 * 24 * 3600
    deferred_max_expiry: int = 30 * 24 * 3600
    # §6.1.1.3.1 step 2 (PO-09): whether Privacy: id (anonymity) is allowed.
    allow_anonymity: bool = True
    # §8.3.1.1 (Controlling Function, pager exploder at sip:Exploder@DOMAIN): the largest
    # ad-hoc URI list (above: 486 + Warning 102), the largest message part (above: 413),
    # and Timer Ts2 (§15.1) that bounds the aggregation of delivery notifications.
    exploder_max_recipients: int = 100
    exploder_max_message: int = 32 * 1024
    exploder_ts2: float = 30.0
    # §13.2.3 step 1 (Conversation History): bytes of history stored per user before
    # "not enough resources" (storage full: nothing more recorded, a System Message);
    # 0: no limit.
    history_quota: int = 64 * 1024 * 1024
    # The history HTTP endpoint (search / list / metadata, digest-authenticated against the
    # user store): HOST:PORT, or None for off.
    history_http_listen: str | None = None
    # §7.2 (Controlling Function as conference focus at sip:Conference-Factory@DOMAIN):
    # MAX-ADHOC-GROUP-SIZE (creator included) and §7.2.2.8 number-of-remaining-participants
    conference_max_participants: int = 20
    conference_remaining_participants: int = 1
    # §7.2.3.4 a): private messages in ad-hoc conferences (a group's <allow-private-message>
    # decides for its sessions)
    conference_private_messages: bool = True
    # §6.1.1.1 step 3 (PO-01): User-Agent products accepted / refused (403 + Error-Info);
    # ``IM-client`` matches every version, ``IM-client/OMA1.0`` that one.  Empty allow list:
    # every User-Agent not denied.  The Error-Info URI (None: a data: URI with the reason).
    pf_user_agent_allow: tuple[str, ...] = ()
    pf_user_agent_deny: tuple[str, ...] = ()
    pf_user_agent_error_info: str | None = None
    # §6.1.1.1 step 4b / §6.1.2.1 step 3b: the SDP of IM INVITEs (488 otherwise): largest
    # a=max-size / file size (None: no bound), media types carried, MSRP media only.
    pf_session_max_size: int | None = None
    pf_session_content_types: tuple[str, ...] = ("*",)
    pf_session_msrp_only: bool = True
    # RFC 4028 §8 on the sessions the Participating Function handles: Session-Expires
    # inserted (timers.session_expires) when missing, 422 below timers.min_se.
    pf_session_timer: bool = True
    # How often expired bindings, deferred messages and settings are purged (seconds).
    purge_interval: float = 60.0
    # Server media (server/media): the MSRP listener of the sessions the server is an
    # endpoint of.  "auto" = the first SIP listen address, port + 1 when free (else an
    # ephemeral port); "HOST:PORT" (port 0: ephemeral); "off" = no server media.
    msrp_listen: str = "auto"
    # PO-00: the terminating Participating Function stays out of the media path ("proxy",
    # Record-Route only) or is a B2BUA with an MSRP back-to-back relay ("b2bua").
    pf_media: str = "proxy"
    # The relay: messages queued per direction / conference leg; the largest message held
    # in memory per leg (413 above it, RFC 4975 §7.3.1).
    media_queue_limit: int = 64
    media_max_message: int = 16 * 1024 * 1024
    # XDM documents over XCAP (RFC 4825, server/xdm): the HTTP listener (None = off) and the
    # largest document or request body accepted (413 above it).
    xcap_listen: str | None = None
    xcap_max_document: int = 1024 * 1024
    # XCAP over HTTPS (RFC 4825 §14: TLS is what XCAP uses), with the server's tls_cert and
    # tls_key
    xcap_tls: bool = False

    def msrp_address(self) -> tuple[str, int, bool, str] | None:
        """(host, port, fall back to an ephemeral port, advertised host) of the MSRP
        listener, None when it is off.  On a wildcard address the domain is advertised in
        ``a=path`` (RFC 4975 §6: the authority of the MSRP URI)."""
        if self.msrp_listen == "off":
            return None
        if self.msrp_listen != "auto":
            host, port = parse_host_port(self.msrp_listen, 0)
            fallback = False
        else:
            first = self.listen[0]
            host, port, fallback = first.host, first.port + 1 if first.port else 0, True
        wildcard = host in ("0.0.0.0", "::")
        return host, port, fallback, self.domain if wildcard else host

    @property
    def auth_realm(self) -> str:
        return self.realm or self.domain

    def validate(self) -> None:
        """Raise :class:`ConfigError` on an inconsistent configuration."""
        if not self.domain:
            raise ConfigError("--domain must not be empty")
        if not self.listen:
            raise ConfigError("at least one --listen address is needed")
        if any(spec.transport == "tls" for spec in self.listen) and not (
            self.tls_cert and self.tls_key
        ):
            raise ConfigError("a tls: listener needs --tls-cert and --tls-key")
        if parse_auth_algorithms(self.auth_algorithms) != tuple(self.auth_algorithms):
            raise ConfigError("auth_algorithms must be canonical names (parse_auth_algorithms)")
        if not 0 < self.min_expires <= self.max_expires:
            raise ConfigError("min_expires must be > 0 and <= max_expires")
        for name in ("max_vias", "max_transactions", "max_contacts", "max_branches",
                     "max_tcp_connections", "max_tcp_per_source"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        for name in ("auth_max_failures_source", "auth_max_failures_user",
                     "overload_max_pending", "overload_retry_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        for name in ("auth_failure_window", "auth_lockout", "overload_max_lag",
                     "overload_max_busy",
                     "tcp_incomplete_timeout", "tcp_idle_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.exploder_max_recipients < 1 or self.exploder_max_message < 1 \
                or not self.exploder_ts2 > 0:
            raise ConfigError("exploder_max_recipients, exploder_max_message and "
                              "exploder_ts2 must be > 0")
        if self.history_quota < 0:
            raise ConfigError("history_quota must be >= 0 (0: no limit)")
        if self.conference_max_participants < 2 \
                or self.conference_remaining_participants not in (0, 1):
            raise ConfigError("conference_max_participants must be >= 2 and "
                              "conference_remaining_participants 0 or 1 (§7.2.2.8)")
        if not 0 < self.deferred_default_expiry <= self.deferred_max_expiry:
            raise ConfigError("deferred_default_expiry must be > 0 and <= deferred_max_expiry")
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ConfigError(f"unknown log level {self.log_level!r}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"unknown log format {self.log_format!r}: use text or json")
        if self.metrics_listen is not None:
            parse_host_port(self.metrics_listen, 9090)
        if self.history_http_listen is not None:
            parse_host_port(self.history_http_listen, 8090)
        if self.flow_timer <= 0:
            raise ConfigError("flow_timer must be > 0")
        if self.default_expires <= 0:
            raise ConfigError("default_expires must be > 0")
        if self.pf_media not in PF_MEDIA_MODES:
            raise ConfigError(f"unknown pf_media {self.pf_media!r}: use proxy or b2bua")
        if self.pf_media == "b2bua" and self.msrp_listen == "off":
            raise ConfigError("pf_media b2bua needs the MSRP listener (msrp_listen)")
        if self.msrp_listen not in ("auto", "off"):
            try:
                parse_host_port(self.msrp_listen, 0)
            except ConfigError as exc:
                raise ConfigError(f"msrp_listen: {exc} (use HOST:PORT, auto or off)") from None
        if self.xcap_listen is not None:
            try:
                parse_host_port(self.xcap_listen, 0)
            except ConfigError as exc:
                raise ConfigError(f"xcap listen: {exc} (use HOST:PORT)") from None
        if self.xcap_max_document < 1:
            raise ConfigError("xcap_max_document must be >= 1")
        if self.xcap_tls and not (self.tls_cert and self.tls_key):
            raise ConfigError("xcap over HTTPS needs the server's certificate and key "
                              "(--tls-cert / --tls-key, [tls] cert / key)")
        if self.media_queue_limit < 1 or self.media_max_message < 1:
            raise ConfigError("media_queue_limit and media_max_message must be >= 1")
        if self.pf_session_max_size is not None and self.pf_session_max_size < 1:
            raise ConfigError("pf_session_max_size must be >= 1")
        if not self.pf_session_content_types:
            raise ConfigError("pf_session_content_types must not be empty (use \"*\")")
        if self.pf_session_timer and self.timers.min_se < 90:
            raise ConfigError("timers.min_se must be >= 90 (RFC 4028 §4)")
