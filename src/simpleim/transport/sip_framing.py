"""Adapter from the SIP core's :class:`~simpleim.sip.framing.StreamFramer` to the
asyncio stream protocol: ``feed(data) -> (messages, pong_needed)``; ``pongs`` counts the
single-CRLF pongs seen (RFC 5626 §4.4.1: the UA's proof that its flow is alive)."""

from __future__ import annotations

from simpleim.sip.framing import KeepAlive, StreamFramer
from simpleim.sip.message import SipLimits

__all__ = ["StreamFramerAdapter"]


class StreamFramerAdapter:
    """Content-Length framing (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626 §3.5.1)."""

    __slots__ = ("_framer", "pongs")

    def __init__(self, max_message_size: int = 65535) -> None:
        self._framer = StreamFramer(
            SipLimits(max_message_size=max_message_size, max_body=max_message_size)
        )
        self.pongs = 0

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message held."""
        return self._framer.buffered

    def feed(self, data: bytes) -> tuple[list[bytes], bool]:
        """Raises :class:`~simpleim.sip.framing.SipFramingError` (fatal for the stream)."""
        messages: list[bytes] = []
        pong = False
        for item in self._framer.feed(data):
            if isinstance(item, KeepAlive):
                # RFC 5626 §3.5.1: a double-CRLF ping is answered with one CRLF pong.
                pong = pong or item.pong_needed
                if not item.ping:
                    self.pongs += 1
            else:
                messages.append(item)
        return messages, pong
