"""Operator policies of the Participating Function (OMA SIMPLE IM §6.1.1.1, §6.1.2.1), pure:

* :class:`UserAgentPolicy` — PO-01 step 3: the User-Agent products the server accepts or
  refuses (Appendix F.1 ``server-val`` tokens, e.g. ``IM-client/OMA1.0``);
* :class:`SessionPolicy` — PO-01 step 4b / PT-01 step 3b: the SDP of a session, large-message
  or file-transfer INVITE against the operator's sizes and contents; what is wrong is said in
  words (for the 399 Warning) and :meth:`SessionPolicy.capabilities` describes what is
  supported as SDP (RFC 3261 §21.4.26: a 488 MAY carry the supported media as SDP).
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.errors import SdpError
from simpleim.sdp import MSRP_PROTOCOLS, parse_sdp
from simpleim.sdp.file_transfer import FileSelector
from simpleim.sdp.model import MediaDescription
from simpleim.sdp.msrp import is_msrp_media, type_matches

__all__ = ["SessionPolicy", "UserAgentPolicy", "products"]


def products(user_agent: str) -> list[str]:
    """The ``product`` tokens of a User-Agent / Server value (RFC 3261 §20.41, Appendix F.1),
    comments in parentheses left out: ``IM-client/OMA1.0 Acme/1 (x)`` ->
    ``["IM-client/OMA1.0", "Acme/1"]``."""
    out: list[str] = []
    depth = 0
    word = ""
    for ch in user_agent + " ":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and ch.isspace():
            if word:
                out.append(word)
            word = ""
        elif depth == 0:
            word += ch
    return out


def _product_matches(pattern: str, product: str) -> bool:
    """``name`` matches every version of the product, ``name/version`` that version only
    (case-insensitive)."""
    p = pattern.strip().lower()
    q = product.lower()
    return q == p if "/" in p else q.split("/", 1)[0] == p


@dataclass(frozen=True, slots=True)
class UserAgentPolicy:
    """PO-01 step 3.  ``allow`` empty: every User-Agent passes unless it names a ``deny``
    product; otherwise one of its products must match ``allow`` (and none ``deny``)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.allow or self.deny)

    def refusal(self, user_agent: str | None) -> str | None:
        """Why ``user_agent`` is not supported, or None when it is."""
        if not self.active:
            return None
        found = products(user_agent or "")
        for product in found:
            if any(_product_matches(p, product) for p in self.deny):
                return f"User-Agent {product} is not supported"
        if self.allow and not any(_product_matches(p, q) for p in self.allow for q in found):
            what = found[0] if found else "(none)"
            return (f"User-Agent {what} is not supported; supported: "
                    + " ".join(self.allow))
        return None


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """PO-01 step 4b / PT-01 step 3b.

    ``max_size``: the largest message (``a=max-size``, RFC 4975 §8.6) and file
    (``a=file-selector`` size, RFC 5547 §6) the operator carries, None: no bound.
    ``content_types``: the media types the operator carries (``*`` and ``type/*`` allowed);
    every type an offer lists in ``a=accept-types`` / ``a=accept-wrapped-types`` / the
    file-selector must match one of them (an offered ``*`` says what the sender accepts
    and is not held against it).  ``msrp_only``: every active media line must be an MSRP
    ``message`` line (RFC 4975 §8.1)."""

    max_size: int | None = None
    content_types: tuple[str, ...] = ("*",)
    msrp_only: bool = True

    def _allowed(self, media_type: str) -> bool:
        return media_type == "*" or any(type_matches(p, media_type)
                                        for p in self.content_types)

    def _media_problem(self, m: MediaDescription) -> str | None:
        if m.port == 0:
            return None  # a rejected / disabled stream carries nothing (RFC 3264 §6)
        if not is_msrp_media(m):
            return f"m={m.media} {m.proto} is not supported" if self.msrp_only else None
        types = [t for v in m.get_all("accept-types") + m.get_all("accept-wrapped-types")
                 for t in v.split()]
        selector_value = m.get("file-selector")
        size: int | None = None
        if selector_value is not None:
            try:
                selector = FileSelector.parse(selector_value)
            except SdpError:
                return "the file-selector attribute is malformed"
            if selector.type:
                types.append(selector.type)
            size = selector.size
        for t in types:
            if not self._allowed(t):
                return f"content {t} is not supported"
        if self.max_size is not None:
            max_size = m.get("max-size")
            if max_size is not None and max_size.strip().isdigit() \
                    and int(max_size) > self.max_size:
                return f"max-size {int(max_size)} is above {self.max_size}"
            if size is not None and size > self.max_size:
                return f"file size {size} is above {self.max_size}"
        return None

    def refusal(self, sdp: bytes) -> str | None:
        """What in the SDP offer ``sdp`` does not conform, or None."""
        try:
            description = parse_sdp(sdp)
        except SdpError as exc:
            return f"the SDP is malformed: {exc.detail}"
        for m in description.media:
            problem = self._media_problem(m)
            if problem is not None:
                return problem
        return None

    def supported(self) -> str:
        """The sizes and contents supported, in words (for the Warning text)."""
        text = "supported: message " + "/".join(MSRP_PROTOCOLS)
        if self.content_types != ("*",):
            text += ", accept-types " + " ".join(self.content_types)
        if self.max_size is not None:
            text += f", max-size {self.max_size}"
        return text

    def capabilities(self, host: str) -> bytes:
        """An SDP describing what is supported (port 0: a description, not an offer; as in
        RFC 3264 §9 for OPTIONS)."""
        lines = ["v=0", f"o=- 0 0 IN IP4 {host}", "s=-", "c=IN IP4 0.0.0.0", "t=0 0"]
        for proto in MSRP_PROTOCOLS:
            lines.append(f"m=message 0 {proto} *")
            lines.append("a=accept-types:" + " ".join(self.content_types))
            if self.max_size is not None:
                lines.append(f"a=max-size:{self.max_size}")
        return ("\r\n".join(lines) + "\r\n").encode()
