"""Deferred messages on the client (OMA SIMPLE IM §12.1).

* the IM service settings (C-SET-01) are published by
  :class:`simpleim.client.settings.ServiceSettingsFeature`.
* :class:`DeferredFeature` deletes stored messages (C-DM-03): a REFER to
  ``sip:Delete@DOMAIN`` whose Refer-To is the message's Message-ID URI, or
  ``sip:Deferred@DOMAIN`` for all of them.  We send ``Refer-Sub: false`` (RFC 4488): the
  outcome is the REFER's final response and no subscription dialog is kept.  Several
  messages are deleted with one REFER each (the multiple-refer body of §12.1.3.3 is not sent).

Receiving deferred messages needs no request of ours: the server re-sends them when we
register (or publish ``offline-delivery active="true"``) and they arrive as
:class:`~simpleim.client.events.MessageEvent` with ``deferred=True`` (see
:mod:`simpleim.client.messages`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .context import ClientContext
from .pager import build_request, new_call_id, new_tag

__all__ = ["DeferredFeature"]


class DeferredFeature:
    """Deleting the messages the server stored for us (OMA §12.1.3)."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx

    def message_uri(self, message_id: str) -> str:
        """``ID``, ``ID@host`` or ``sip:ID@host`` -> the Message-ID URI (DM-05 form)."""
        text = message_id.strip().strip("<>")
        if text.startswith("sip:"):
            return text
        if "@" not in text:
            text = f"{text}@{self.ctx.config.domain}"
        return "sip:" + text

    async def _refer(self, refer_to: str) -> int:
        cfg = self.ctx.config
        req = build_request(
            "REFER", target=f"sip:Delete@{cfg.domain}", from_uri=cfg.uri, from_tag=new_tag(),
            call_id=new_call_id(self.ctx.host), contact=self.ctx.contact,
            extra=(("Refer-To", f"<{refer_to}>"), ("Refer-Sub", "false")))
        resp = await self.ctx.ua.request(req)
        return resp.status

    async def delete(self, message_ids: Sequence[str]) -> list[int]:
        """Delete the given stored messages; one final status per message (2xx: deleted,
        403: not ours, 404: no such message)."""
        return [await self._refer(self.message_uri(m)) for m in message_ids]

    async def delete_all(self) -> int:
        """Delete every stored message (§12.1.3.4: Refer-To sip:Deferred@DOMAIN)."""
        return await self._refer(f"sip:Deferred@{self.ctx.config.domain}")
