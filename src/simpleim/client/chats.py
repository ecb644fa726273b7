"""1-1 IM sessions (OMA SIMPLE IM §7.1.1.2 originating, §7.1.2.1 terminating).

``account.chats.start("bob")`` invites a peer to a CPM session (Accept-Contact with
``+g.oma.sip-im`` and the CPM session ICSI, P-Preferred-Service, one MSRP m-line); an incoming
chat INVITE rings, follows the session policy (``ask`` waits for the application's decision)
and is answered with the SDP answer.
"""

from __future__ import annotations

from simpleim.errors import ProtocolError
from simpleim.sdp import SessionDescription, chat_stream
from simpleim.transport.sip import IncomingRequest

from .context import ClientContext, MessageSink
from .features import ICSI_CPM_SESSION, SIP_IM
from .invites import CHAT_CAPS, InviteRouter, accept, decide, establish, is_chat, reject, ring
from .pager import new_tag, normalize_uri, sip_identity
from .session import ChatSession

__all__ = ["Chats", "CHAT_ACCEPT_CONTACT"]

#: OMA §7.1.1.1 / seed 002 CPM session: the IM tag and the CPM session ICSI.
CHAT_ACCEPT_CONTACT = f'*;{SIP_IM};+g.3gpp.icsi-ref="{ICSI_CPM_SESSION.replace(":", "%3A")}"'


class Chats:
    """The chat feature of an account."""

    def __init__(self, ctx: ClientContext, sink: MessageSink) -> None:
        self.ctx = ctx
        self.sink = sink

    def register(self, router: InviteRouter) -> None:
        """Chat is the fallback route: an INVITE no other feature claims (OMA §7.1.2)."""
        router.add("chat", is_chat, self.on_invite, priority=0)

    async def start(self, to: str, *, timeout: float = 60.0) -> ChatSession:
        """Invite ``to`` (``bob``, ``bob@domain`` or a URI) to a 1-1 IM session; raises
        :class:`~simpleim.client.session.SessionFailed` with the SIP status."""
        ctx = self.ctx
        target = normalize_uri(to, ctx.config.domain)
        session = ChatSession(ctx, self.sink, target, is_uac=True,
                              call_id=f"{new_tag()}{new_tag()}@{ctx.msrp.host}")
        await establish(ctx, session, target, lambda i, local: chat_stream(local), 1,
                        accept_contact=CHAT_ACCEPT_CONTACT, timeout=timeout,
                        # seed 002 CPM session INVITE: P-Preferred-Service, session ICSI.
                        extra_headers=[("P-Preferred-Service", ICSI_CPM_SESSION)])
        session.start_media()
        return session

    def session(self, session_id: str) -> ChatSession | None:
        s = self.ctx.sessions.get(session_id)
        return s if isinstance(s, ChatSession) else None

    def holding(self, message_id: str) -> ChatSession | None:
        """The live chat in which ``message_id`` was received."""
        for s in self.ctx.sessions.values():
            if isinstance(s, ChatSession) and message_id in s.received:
                return s
        return None

    async def on_invite(self, inc: IncomingRequest, offer: SessionDescription) -> None:
        """OMA §7.1.2.1: 180, the policy's decision (480 on decline / 408 on no answer),
        200 with the SDP answer, MSRP up."""
        ctx = self.ctx
        peer = sip_identity(inc.request)
        session = ChatSession(ctx, self.sink, peer, is_uac=False, call_id=inc.request.call_id)
        invitation = ring(session, inc)
        session.emit_state("invited", invitation=invitation)
        ok = await decide(ctx, invitation, ctx.config.policy.sessions)
        if invitation.cancelled:
            return
        if not ok:
            reject(session, inc, invitation.decline_status)
            return
        try:
            await accept(ctx, session, inc, offer, CHAT_CAPS)
        except ProtocolError as exc:
            reject(session, inc, exc.status if exc.status >= 400 else 488, exc.detail)
            return
        session.start_media()
