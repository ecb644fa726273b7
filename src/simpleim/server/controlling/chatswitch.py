"""The MSRP switch of a conference as the room policy (OMA SIMPLE IM §7.2.3.1, §7.2.3.3,
§7.2.3.4): :func:`.conference.switch_targets` decides, this applies it to the room's legs.

* a message whose CPIM From is not the sender's identity in the mapping table, or a private
  message the policy does not allow (a pre-defined group's ``<allow-private-message>`` for
  the sender, the operator's ``conference_private_messages`` ad hoc), is not switched: the
  sender's SEND gets MSRP 403 (the room holds each leg's answer until it is routed);
* a private message (CPIM To = participants, §7.2.3.4) goes only to the participants it
  names, its CPIM To unchanged (the receiver tells it is private from it, §7.1.3.3) - and
  only when each of them is an OMA IM client or server by the User-Agent / Server of its
  INVITE or 200 (Appendix F, step b), else MSRP 403;
* the copies of an anonymous participant's messages carry its alias and anonymous identity
  as CPIM From (§7.2.3.2), whatever identity of its own it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from simpleim.server.media import Leg, MediaMessage, MessageRefused, Room
from simpleim.server.participating.policy import products

from .conference import ConferenceLimits, switch_targets
from .running import Running

__all__ = ["ConferenceSwitch", "is_im_node"]


def is_im_node(agents: Sequence[str]) -> bool:
    """Appendix F.1: a User-Agent / Server value whose first product is ``IM-<device>/
    OMA<release>`` (an IM client or IM server), §7.2.3.4 b)."""
    for value in agents:
        first = products(value)[:1]
        if first and first[0].lower().startswith("im-") and "/oma" in first[0].lower():
            return True
    return False


class ConferenceSwitch:
    """The room policy of a conference: the MSRP switch (§7.2.3)."""

    def __init__(self, running: Running, limits: ConferenceLimits) -> None:
        self.running = running
        self.limits = limits
        self.refused = 0                        # messages dropped (spoofed From...)
        self.private = 0                        # private messages switched

    def private_allowed(self, sender: str) -> bool:
        """§7.2.3.4 a): the group's ``<allow-private-message>`` for ``sender`` (a group
        not read since a restart: none allowed), the operator's policy ad hoc."""
        running = self.running
        if running.conf.group is None:
            return self.limits.allow_private_messages
        group = running.group
        return group is not None and group.permissions(sender).allow_private_message

    def route(self, room: Room, sender: Leg, message: MediaMessage
              ) -> Sequence[tuple[Leg, MediaMessage]]:
        decision = switch_targets(self.running.conf, sender.name, message.content_type,
                                  message.body,
                                  private_allowed=self.private_allowed(sender.name))
        if decision.refuse is not None:
            # §7.2.3.1 / §7.2.3.3 step 1 / §7.2.3.4 a): not switched; the sender's SEND
            # gets the status (the room holds the acknowledgements of a conference's legs)
            self.refused += 1
            raise MessageRefused(decision.reason or "refused", status=decision.refuse)
        if decision.private:
            if not all(self.running.im_nodes.get(uri, False) for uri in decision.to):
                # §7.2.3.4 b): the next node is not known to be an IM client or server
                self.refused += 1
                raise MessageRefused("the recipient is not an OMA IM node", status=403)
            self.private += 1
        copy = message if decision.body is None else replace(message, body=decision.body)
        legs = self.running.legs
        return [(legs[uri], copy) for uri in decision.to
                if uri in legs and legs[uri] is not sender]
