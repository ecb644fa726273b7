"""Client configuration: one frozen dataclass, loaded from TOML, environment and arguments.

Precedence (lowest first): built-in defaults, the TOML file (``~/.config/simpleim/client.toml``
or ``--config``), ``SIMPLEIM_*`` environment variables, command-line options.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from simpleim.errors import ConfigError
from simpleim.timers import DEFAULT_TIMERS, Timers
from simpleim.transport.sip_addr import TransportAddr, normalize_host

__all__ = [
    "ClientConfig",
    "Policy",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STATE_DIR",
    "parse_hostport",
    "load_config",
    "ENV_PREFIX",
]

DEFAULT_CONFIG_PATH = Path("~/.config/simpleim/client.toml")
#: where the CLI keeps client state (the IM service settings it last published)
DEFAULT_STATE_DIR = "~/.local/state/simpleim"
ENV_PREFIX = "SIMPLEIM_"
_POLICIES = ("accept", "decline", "ask")


@dataclass(frozen=True)
class Policy:
    """What to do with incoming invitations: ``accept``, ``decline`` or ``ask`` (the
    application answers the event's invitation itself)."""

    sessions: str = "accept"
    files: str = "accept"
    images: str = "accept"
    #: ``ask``: seconds the application has to answer before the invitation is declined
    #: with 408 (OMA §7.1.2.1)
    answer_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("sessions", "files", "images"):
            if getattr(self, name) not in _POLICIES:
                raise ConfigError(f"policy {name} must be one of {', '.join(_POLICIES)}")
        if not self.answer_timeout > 0:
            raise ConfigError("policy answer_timeout must be positive")


@dataclass(frozen=True)
class ClientConfig:
    """Everything an :class:`~simpleim.client.account.Account` needs."""

    aor: str                                  # user@domain
    password: str = ""
    proxy: str | None = None                  # [udp:|tcp:|tls:]host[:port]; None = the domain
    listen: str = "127.0.0.1:0"               # [udp:|tcp:]host[:port] for SIP
    msrp_listen: str = "127.0.0.1:0"          # host[:port] for MSRP (TCP)
    msrp_relay: str | None = None             # msrp://host:port;tcp of our RFC 4976 relay
    display_name: str | None = None
    expires: int = 600                        # REGISTER Expires (s)
    session_expires: int = 1800               # RFC 4028 Session-Expires we ask for
    download_dir: str = "."
    max_file_size: int | None = 100 * 1024 * 1024
    pager_max: int = 1300                     # OMA SIMPLE IM §8.1: pager mode below 1300 bytes
    chunk_size: int = 2048
    imdn: tuple[str, ...] = ("positive-delivery", "display")
    fixed_datetime: str | None = None         # CPIM DateTime override (peers with date bugs)
    require_pref: bool = True                 # OMA §5.2.1: Require: pref in REGISTER
    policy: Policy = field(default_factory=Policy)
    timers: Timers = DEFAULT_TIMERS
    options_retries: int = 2                  # IR.79 §2.3: retry 1~3 times on 480
    options_retry_delay: float = 1.0
    capability_ttl: float = 300.0
    max_sessions: int = 64                    # more concurrent INVITE sessions -> 486 Busy
    tls_ca: str | None = None                 # CA file to verify the TLS proxy (RFC 3261 §26.2)
    tls_insecure: bool = False                # do not verify the proxy's certificate (tests)
    tls_cert: str | None = None               # PEM chain + key: MSRP over TLS (msrps listener)
    tls_key: str | None = None                #   when the signalling is TLS (RFC 4975 §6)
    #: the XCAP root of the user's XDM documents (RFC 4825 §6.1), e.g.
    #: ``http://im.example.com:8080/xcap-root`` (``simpleim xcap|group|deferred list``)
    xcap_root: str | None = None
    #: Sources besides the proxy flow whose SIP requests are accepted: "host", "host:port",
    #: or "*" for any (a client used without a proxy).  Issue 7 item 17.
    trusted_sources: tuple[str, ...] = ()
    #: Largest MSRP message held in memory (chat text, IMDN, large pager-mode message) and
    #: the bytes the unfinished messages of one session may hold together; more is refused
    #: with MSRP 413 (issue 7 item 4).
    max_message_size: int = 16 * 1024 * 1024
    max_session_memory: int = 32 * 1024 * 1024
    #: Partial files of interrupted transfers (kept for resume) older than this are removed
    #: (seconds; issue 7 item 9).
    partial_ttl: float = 7 * 24 * 3600.0
    #: Bound of the download directory (finished + partial files, bytes): offers that would
    #: pass it are declined, a transfer is cut (413) when it would.  None: unbounded.
    max_download_bytes: int | None = 4 * 1024 * 1024 * 1024
    #: RFC 5626 outbound over a TCP/TLS proxy: +sip.instance/reg-id in REGISTER, CRLF
    #: keep-alives, re-registration over a new flow when it fails.
    outbound: bool = True
    #: the device's stable instance id (``urn:uuid:...``, RFC 5626 §4.1); None = a new one
    #: per start (a restarted agent then registers as a new device)
    instance_id: str | None = None
    #: C-REG-01 (OMA §5.2.2): PUBLISH the IM service settings after each initial
    #: registration.  What is published: the settings last published from this account
    #: (kept in ``state_dir``), else the Appendix E.1 defaults, with these four overriding
    #: when given (None: keep).
    publish_settings: bool = True
    offline_delivery: bool | None = None
    bar_sessions: bool | None = None
    bar_messages: bool | None = None
    invisible: bool | None = None
    #: where the client keeps what it last published (None: nowhere; the CLI uses
    #: ~/.local/state/simpleim)
    state_dir: str | None = None
    #: the server's history HTTP endpoint (``[history] http_listen`` of the server), e.g.
    #: ``http://im.example.com:8090/history``: listing and searching stored history
    history_url: str | None = None

    def __post_init__(self) -> None:
        user, sep, domain = self.aor.removeprefix("sip:").partition("@")
        if not sep or not user or not domain:
            raise ConfigError(f"account must be user@domain, got {self.aor!r}")
        if self.expires < 0 or self.pager_max < 1 or self.chunk_size < 1:
            raise ConfigError("expires, pager_max and chunk_size must be positive")

    @property
    def user(self) -> str:
        return self.aor.removeprefix("sip:").partition("@")[0]

    @property
    def domain(self) -> str:
        return self.aor.removeprefix("sip:").partition("@")[2]

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def proxy_addr(self) -> TransportAddr:
        text = self.proxy or self.domain
        return parse_hostport(text, default_port=5060, default_transport=self.transport)

    @property
    def transport(self) -> str:
        for text in (self.proxy or "", self.listen):
            prefix = text.split(":", 1)[0].lower()
            if prefix in ("udp", "tcp", "tls"):
                return prefix
            if prefix == "sips":
                return "tls"                   # RFC 3261 §26.2: sips over TLS
        return "udp"

    @property
    def listen_addr(self) -> TransportAddr:
        """Our SIP listener.  With a TLS proxy the client listens on TCP (it has no server
        certificate): the proxy reaches it over the TLS connection the client opened
        (RFC 3261 §18 connection reuse, RFC 5923 style)."""
        addr = parse_hostport(self.listen, default_port=0, default_transport=self.transport)
        if addr.transport == "tls":
            return TransportAddr("tcp", addr.host, addr.port)
        return addr

    @property
    def msrp_addr(self) -> TransportAddr:
        return parse_hostport(self.msrp_listen, default_port=0, default_transport="tcp")


def parse_hostport(text: str, *, default_port: int, default_transport: str = "udp"
                   ) -> TransportAddr:
    """``[udp:|tcp:|tls:|sips:]host[:port]`` (IPv6 as ``[::1]:5060``); ``localhost`` ->
    127.0.0.1.  ``sips:`` is TLS (RFC 3261 §26.2), default port 5061."""
    transport = default_transport
    rest = text.strip()
    head, sep, tail = rest.partition(":")
    if sep and head.lower() in ("udp", "tcp", "tls", "sips"):
        transport, rest = head.lower(), tail
    if transport == "sips":
        transport = "tls"
    if transport == "tls" and default_port == 5060:
        default_port = 5061                     # RFC 3261 §26.2 / §19.1.2
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ConfigError(f"bad address {text!r}")
        host, port_s = rest[1:end], rest[end + 1:].lstrip(":")
    elif rest.count(":") == 1:
        host, port_s = rest.split(":")
    else:
        host, port_s = rest, ""
    if not host:
        raise ConfigError(f"bad address {text!r}")
    try:
        port = int(port_s) if port_s else default_port
    except ValueError:
        raise ConfigError(f"bad port in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"bad port in {text!r}")
    host = normalize_host(host)
    if host == "localhost":
        host = "127.0.0.1"
    return TransportAddr(transport, host, port)


_FIELD_TYPES = {f.name: f.type for f in fields(ClientConfig)}


def _coerce(name: str, value: Any) -> Any:
    kind = str(_FIELD_TYPES.get(name, "str"))
    if value is None:
        return None
    if kind.startswith("int") or kind == "int | None":
        return int(value)
    if kind.startswith("float"):
        return float(value)
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if kind.startswith("tuple"):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(value)
    return str(value)


def _alias(key: str) -> str:
    return "aor" if key == "account" else key


def load_config(
    *,
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> ClientConfig:
    """Build a :class:`ClientConfig` from a TOML file, ``SIMPLEIM_*`` variables and overrides.

    The TOML file holds the field names at top level (``account``, ``password``, ``proxy``,
    ``listen``, ``download_dir``, ...) and an optional ``[policy]`` table.  A missing default
    file is fine; a missing explicit ``path`` is an error.
    """
    values: dict[str, Any] = {}
    policy: dict[str, str] = {}
    env = os.environ if env is None else env
    explicit = path is not None or env.get(ENV_PREFIX + "CONFIG") is not None
    cfg_path = Path(path or env.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_PATH).expanduser()
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {cfg_path}: {exc}") from exc
        for key, val in data.items():
            if key == "policy" and isinstance(val, dict):
                policy.update({str(k): str(v) for k, v in val.items()})
            else:
                values[_alias(key.replace("-", "_"))] = val
    elif explicit:
        raise ConfigError(f"config file {cfg_path} not found")
    for key, val in env.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
            name = key[len(ENV_PREFIX):].lower()
            if name.startswith("policy_"):
                policy[name[7:]] = val
            else:
                values[_alias(name)] = val
    for key, val in (overrides or {}).items():
        if val is None:
            continue
        if key.startswith("policy_"):
            policy[key[7:]] = str(val)
        else:
            values[_alias(key)] = val
    if "aor" not in values:
        raise ConfigError("no account given (--account, SIMPLEIM_ACCOUNT or 'account' in "
                          f"{cfg_path})")
    known: dict[str, Any] = {}
    for key, val in values.items():
        if key in _FIELD_TYPES and key not in ("policy", "timers"):
            try:
                known[key] = _coerce(key, val)
            except (TypeError, ValueError):
                raise ConfigError(f"bad value for {key}: {val!r}") from None
    try:
        cfg = ClientConfig(**known)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
    if policy:
        base = Policy()
        try:
            timeout = float(policy.get("answer_timeout", base.answer_timeout))
        except ValueError:
            raise ConfigError(f"bad policy answer_timeout: {policy['answer_timeout']!r}") from None
        cfg = replace(cfg, policy=Policy(sessions=policy.get("sessions", base.sessions),
                                         files=policy.get("files", base.files),
                                         images=policy.get("images", base.images),
                                         answer_timeout=timeout))
    return cfg
