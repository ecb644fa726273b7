"""Capability discovery with SIP OPTIONS (GSMA IR.79 §2.2-2.3, OMA CPM), sans-I/O parts.

* :func:`build_options`: OPTIONS with ``Accept-Contact: *;+g.3gpp.cs-voice`` (IR.79 §2.3:
  "OPTIONS message shall include the CSI feature tag +g.3gpp.cs-voice in the Accept-Contact")
  and our feature tags in Contact.
* :func:`options_answer_sdp`: the single ``m=message 0 TCP/MSRP *`` description IR.79 §2.3
  shows ("shall contain only a single message media description").
* :func:`retry_decision`: IR.79 §2.3 - on 480 retry 1~3 times, anything else is final.
* :class:`CapabilityCache`: results kept for a TTL (IR.79 §2.3: a cached answer avoids a query).
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.sdp import Attribute, Connection, MediaDescription, Origin, SessionDescription
from simpleim.sip.message import SipRequest, SipResponse

from .features import ACCEPT, ALLOW, CS_VOICE, ServiceSet, services_of
from .pager import build_request

__all__ = ["build_options", "options_answer_sdp", "retry_decision", "CapabilityResult",
           "CapabilityCache", "IMAGE_ACCEPT_TYPES", "result_of"]

#: IR.79 §2.3 example: the content types of an image share capable terminal.
IMAGE_ACCEPT_TYPES = ("text/plain", "text/html", "image/jpeg", "image/gif", "image/bmp",
                      "image/png")


@dataclass(frozen=True)
class CapabilityResult:
    peer: str
    status: int
    services: ServiceSet
    at: float

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.services.names()) if self.status == 200 else ()


def build_options(*, target: str, from_uri: str, from_tag: str, call_id: str, contact: str
                  ) -> SipRequest:
    return build_request(
        "OPTIONS", target=target, from_uri=from_uri, from_tag=from_tag, call_id=call_id,
        contact=contact, accept_contact=f"*;{CS_VOICE}",
        extra=(("Accept", "application/sdp"), ("Allow", ALLOW)))


def options_answer_sdp(address: str, *, max_size: int | None = None) -> bytes:
    """IR.79 §2.3 capability SDP: one message m-line, port 0, all supported types."""
    addrtype = "IP6" if ":" in address else "IP4"
    attrs = [Attribute("accept-types", " ".join(IMAGE_ACCEPT_TYPES) + " message/cpim"),
             Attribute("file-selector")]
    if max_size is not None:
        attrs.append(Attribute("max-size", str(max_size)))
    sdp = SessionDescription(
        origin=Origin("-", "0", "0", "IN", addrtype, address), session_name="-",
        connection=Connection(address, addrtype),
        media=(MediaDescription("message", 0, "TCP/MSRP", ("*",), attributes=tuple(attrs)),))
    return sdp.to_bytes()


def options_headers(contact: str) -> list[tuple[str, str]]:
    return [("Contact", contact), ("Allow", ALLOW), ("Accept", ACCEPT),
            ("Supported", "timer")]


def retry_decision(status: int, attempt: int, retries: int) -> bool:
    """IR.79 §2.3: retry on 480 (up to ``retries`` times); every other answer is final."""
    return status == 480 and attempt < retries


def result_of(peer: str, response: SipResponse, now: float) -> CapabilityResult:
    services = services_of(response.contacts) if response.status == 200 else ServiceSet()
    return CapabilityResult(peer, response.status, services, now)


class CapabilityCache:
    """Results per peer for ``ttl`` seconds (bounded)."""

    def __init__(self, ttl: float, max_entries: int = 1000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: dict[str, CapabilityResult] = {}

    def get(self, peer: str, now: float) -> CapabilityResult | None:
        item = self._items.get(peer)
        if item is None or now - item.at > self.ttl:
            return None
        return item

    def put(self, result: CapabilityResult) -> None:
        if len(self._items) >= self.max_entries:
            self._items.pop(next(iter(self._items)))
        self._items[result.peer] = result


__all__ += ["options_headers"]
