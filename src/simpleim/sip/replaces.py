"""The ``Replaces`` header (RFC 3891) and its place in a URI (RFC 3261 §19.1.1 headers).

``Replaces: call-id;to-tag=T;from-tag=F[;early-only]`` names a dialog as its *recipient*
sees it: the recipient compares ``to-tag`` with its local tag and ``from-tag`` with its
remote tag (RFC 3891 §3).  OMA SIMPLE IM §7.1.1.6 / Appendix L puts it in the recipient
list entry of the user whose 1-1 session a conference takes over
(``sip:bob@example.com;method=INVITE?Replaces=...``, RFC 5366 §4).
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.errors import SipParseError
from simpleim.sip._abnf import pct_decode, pct_encode
from simpleim.sip.uri import SipUri, parse_uri

__all__ = ["REPLACES_OPTION", "Replaces", "split_replaces_uri"]

#: RFC 3891 §6.1: the option tag of a Require / Supported header
REPLACES_OPTION = "replaces"


@dataclass(frozen=True, slots=True)
class Replaces:
    """A dialog identifier as the recipient of the ``Replaces`` sees it."""

    call_id: str
    to_tag: str                 # the recipient's local tag
    from_tag: str               # the recipient's remote tag
    early_only: bool = False

    @classmethod
    def parse(cls, value: str) -> Replaces:
        """RFC 3891 §6.1 ``callid *(SEMI replaces-param)``; both tags are required."""
        call_id, *params = [p.strip() for p in value.strip().split(";")]
        tags: dict[str, str] = {}
        early = False
        for param in params:
            name, _, val = param.partition("=")
            name = name.strip().lower()
            if name in ("to-tag", "from-tag"):
                tags[name] = val.strip()
            elif name == "early-only":
                early = True
        if not call_id or not tags.get("to-tag") or not tags.get("from-tag"):
            raise SipParseError(f"Replaces without call-id and both tags: {value[:80]!r}",
                                where="Replaces")
        return cls(call_id, tags["to-tag"], tags["from-tag"], early)

    @classmethod
    def of_dialog(cls, call_id: str, local_tag: str, remote_tag: str) -> Replaces:
        """Our own dialog as its other end sees it (its local tag is our remote tag)."""
        return cls(call_id, remote_tag, local_tag)

    def matches(self, call_id: str, local_tag: str, remote_tag: str) -> bool:
        """RFC 3891 §3: the recipient's dialog ``(call_id, local_tag, remote_tag)``."""
        return (self.call_id == call_id and self.to_tag == local_tag
                and self.from_tag == remote_tag)

    def __str__(self) -> str:
        early = ";early-only" if self.early_only else ""
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{early}"

    def in_uri(self, uri: str) -> str:
        """``uri`` with this as its ``Replaces`` URI header (escaped, RFC 3261 §19.1.2)."""
        sep = "&" if "?" in uri else "?"
        return f"{uri}{sep}Replaces={pct_encode(str(self), '-_.!~*()+:$[]/')}"


def split_replaces_uri(uri: str) -> tuple[str, Replaces | None]:
    """A recipient list entry's URI without its parameters and headers, and the
    ``Replaces`` it carries (None without one); raises SipParseError on a bad one."""
    parsed = parse_uri(uri, "resource-lists/entry")
    if not isinstance(parsed, SipUri) or not parsed.headers:
        return uri, None
    value = next((pct_decode(v) for k, v in parsed.headers if k.lower() == "replaces"), None)
    bare = SipUri(parsed.scheme, parsed.user, None, parsed.host, parsed.port)
    return str(bare), None if value is None else Replaces.parse(value)
