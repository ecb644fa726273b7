"""The server's TOML configuration file (``simpleim server --config FILE``).

The file holds everything the command line does not (and the same settings as the flags):
precedence, lowest first, is the :class:`~simpleim.server.config.ServerConfig` defaults, the
file, then the flags given on the command line.  Unknown keys and wrong types are errors
naming the key, so a typo is never silently ignored.

Layout (docs/server.md "Configuration file" is the reference)::

    domain = "example.com"
    aliases = ["im.example.com"]
    listen = ["192.0.2.10:5060", "tls:192.0.2.10:5061"]
    db = "sqlite:////var/lib/simpleim/simpleim.db"

    [auth]            # enabled, realm, algorithms
    [registrar]       # min_expires, max_expires, default_expires
    [tls]             # cert, key
    [log]             # level, format, file
    [metrics]         # listen
    [xcap]            # listen, max_document, tls (HTTPS with the [tls] cert and key)
    [participating]   # allow_anonymity, user_agent_allow/deny/error_info, session_max_size,
                      # session_content_types, session_msrp_only, session_timer
    [controlling]     # exploder_max_recipients, exploder_max_message, exploder_ts2,
                      # conference_max_participants, conference_remaining_participants
    [history]         # quota (bytes of history per user, 0: no limit), http_listen
    [timers]          # any field of simpleim.timers.Timers (t1, timer_c, keepalive, ...)

Any other top-level key that is the name of a plain :class:`ServerConfig` field (a string,
number, boolean or list of strings) sets that field.
"""

from __future__ import annotations

import tomllib
import typing
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from types import UnionType

from simpleim.errors import ConfigError
from simpleim.server.config import ServerConfig, parse_auth_algorithms, parse_listen
from simpleim.timers import Timers
from simpleim.transport.sip_addr import ListenSpec

__all__ = ["ConfigValue", "load_server_config_file", "server_config_overrides"]

# What a setting may hold once read from TOML (the file's value types we accept).
ConfigValue = str | int | float | bool | tuple[str, ...] | tuple[ListenSpec, ...] | Timers | None

# [section] key -> ServerConfig field
_SECTIONS: dict[str, dict[str, str]] = {
    "auth": {"enabled": "auth", "realm": "realm", "algorithms": "auth_algorithms"},
    "registrar": {"min_expires": "min_expires", "max_expires": "max_expires",
                  "default_expires": "default_expires"},
    "tls": {"cert": "tls_cert", "key": "tls_key"},
    "log": {"level": "log_level", "format": "log_format", "file": "log_file"},
    "metrics": {"listen": "metrics_listen"},
    "xcap": {"listen": "xcap_listen", "max_document": "xcap_max_document",
             "tls": "xcap_tls"},
    "participating": {
        "allow_anonymity": "allow_anonymity",
        "user_agent_allow": "pf_user_agent_allow",
        "user_agent_deny": "pf_user_agent_deny",
        "user_agent_error_info": "pf_user_agent_error_info",
        "session_max_size": "pf_session_max_size",
        "session_content_types": "pf_session_content_types",
        "session_msrp_only": "pf_session_msrp_only",
        "session_timer": "pf_session_timer",
    },
    "controlling": {"exploder_max_recipients": "exploder_max_recipients",
                    "exploder_max_message": "exploder_max_message",
                    "exploder_ts2": "exploder_ts2",
                    "conference_max_participants": "conference_max_participants",
                    "conference_remaining_participants": "conference_remaining_participants",
                    "conference_private_messages": "conference_private_messages"},
    "history": {"quota": "history_quota", "http_listen": "history_http_listen"},
}
# top-level names that differ from the field (the flag's name)
_ALIASES = {"db": "db_url", "alias": "aliases"}


def _field_types() -> dict[str, object]:
    return typing.get_type_hints(ServerConfig)


def _coerce(where: str, value: object, hint: object) -> ConfigValue:
    """``value`` from TOML as the type ``hint`` of a dataclass field, or ConfigError."""
    optional = False
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) != len(typing.get_args(hint))
        if len(args) != 1:
            raise ConfigError(f"{where}: this setting cannot be set in the file")
        hint = args[0]
    if optional and value == "":
        return None
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, Ellipsis):
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    raise ConfigError(f"{where}: this setting cannot be set in the file")


def _set(out: dict[str, ConfigValue], where: str, name: str, value: object,
         types: Mapping[str, object]) -> None:
    if name == "listen":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{where} must be a list of [udp:|tcp:|tls:]HOST[:PORT] strings")
        specs: list[ListenSpec] = []
        for item in items:
            specs.extend(parse_listen(item))
        out[name] = tuple(specs)
    elif name == "auth_algorithms":
        if not isinstance(value, str | list):
            raise ConfigError(f"{where} must be a list of algorithm names")
        out[name] = parse_auth_algorithms(value)
    else:
        out[name] = _coerce(where, value, types[name])


def _timers(table: object) -> Timers:
    if not isinstance(table, dict):
        raise ConfigError("[timers] must be a table")
    hints = typing.get_type_hints(Timers)
    values: dict[str, float] = {}
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"unknown key timers.{key} (known: {', '.join(sorted(hints))})")
        coerced = _coerce(f"timers.{key}", value, hints[key])
        if not isinstance(coerced, float) or coerced <= 0:
            raise ConfigError(f"timers.{key} must be a positive number of seconds")
        values[key] = coerced
    return Timers(**values)


def _parse(data: Mapping[str, object]) -> dict[str, ConfigValue]:
    types = _field_types()
    plain = {f.name for f in fields(ServerConfig)} - {"timers"}
    out: dict[str, ConfigValue] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table")
            for sub, subvalue in value.items():
                name = _SECTIONS[key].get(sub)
                if name is None:
                    raise ConfigError(f"unknown key {key}.{sub} (known: "
                                      + ", ".join(sorted(_SECTIONS[key])) + ")")
                _set(out, f"{key}.{sub}", name, subvalue, types)
        elif key == "timers":
            out["timers"] = _timers(value)
        elif _ALIASES.get(key, key) in plain:
            _set(out, key, _ALIASES.get(key, key), value, types)
        else:
            raise ConfigError(f"unknown key {key!r}")
    return out


def load_server_config_file(path: str | Path) -> dict[str, ConfigValue]:
    """Read ``path`` into ServerConfig field overrides (not yet validated together)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {file}: not UTF-8 ({exc.reason})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    try:
        return _parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc


def server_config_overrides(
    base: ServerConfig, *layers: Mapping[str, ConfigValue]
) -> ServerConfig:
    """``base`` with each layer of field overrides applied in order, then validated."""
    config = base
    for layer in layers:
        if layer:
            config = replace(config, **layer)  # type: ignore[arg-type]
    config.validate()
    return config
