"""The Final Delivery Report at the Controlling Function (OMA SIMPLE IM §5.7.3, §9.4.5,
Appendix O) for a group large message (:mod:`.large`).

When the sender's message/cpim carries ``<prefix>.Final-Report: yes`` (the prefix bound to
``urn:oma:xml:poc:final-report``):

* each member's copy is the sender's CPIM unchanged (the Final-Report header kept, §5.7.3
  SHOULD) sent with ``Success-Report: yes`` and ``Failure-Report: yes`` (step 1); the
  member's success REPORT gives 200, a failure response / failure REPORT its status;
* a member whose negotiated ``a=max-size`` is below the message size is not sent it: leg
  status 9999 with ``max-size`` (Appendix O.1);
* a member that got no session has no MSRP status; we report (our choice, the leg status
  being an MSRP status code): 403 when it refused (SIP 403/603, its settings), 415 for
  SIP 415/488, 408 otherwise - no answer, offline, or deferred (stored by the Deferred
  Messaging Function: not delivered while the report is made; the report is the last one,
  so a later deferred delivery is not reported);
* a member whose report did not come within the bounded wait (``report_timeout`` from the
  message's arrival, a deadline): 408;
* one document with every leg, ``last="true"``, goes to the sender in its own session: an
  MSRP REPORT with the document as its body when the sender's SEND asked for MSRP reports
  (``Success-Report: yes``, §5.7.3 step 1; RFC 4975 §7.1.2 allows a REPORT body), else an
  MSRP SEND (step 2); Content-Type ``application/vnd.oma.final-report+xml`` (§5.7.3 b).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from simpleim.content.cpim import parse_cpim
from simpleim.content.final_report import (
    FINAL_REPORT_CONTENT_TYPE,
    STATUS_TOO_LARGE,
    FinalLeg,
    FinalReport,
    final_report_requested,
)
from simpleim.errors import ContentError
from simpleim.server.media import MediaError, MediaMessage, ServerSession

__all__ = [
    "collect_legs",
    "no_session_status",
    "send_final_report",
    "wants_final_report",
    "wants_msrp_reports",
]

log = logging.getLogger("simpleim.server.controlling")


def wants_final_report(message: MediaMessage) -> bool:
    """§9.4.5: the SEND's message/cpim carries ``Final-Report: yes`` (any prefix bound to
    the final-report namespace); an unreadable CPIM asks for nothing."""
    if message.content_type.split(";", 1)[0].strip().lower() != "message/cpim":
        return False
    try:
        return final_report_requested(parse_cpim(message.body))
    except ContentError:
        return False


def wants_msrp_reports(message: MediaMessage) -> bool:
    """The sender's SEND asked for MSRP reports (``Success-Report: yes``, RFC 4975 §7.1.2):
    the report then goes as a REPORT (§5.7.3 step 1)."""
    return any(n.lower() == "success-report" and v.strip().lower() == "yes"
               for n, v in message.headers)


def no_session_status(sip_status: int) -> int:
    """The leg status of a member that got no session (see the module docstring)."""
    if sip_status in (403, 603):
        return 403
    if sip_status in (415, 488):
        return 415
    return 408


async def _leg(member: str, session: ServerSession, message: MediaMessage,
               headers: Sequence[tuple[str, str]]) -> FinalLeg:
    size = len(message.body)
    limit = session.remote_media.max_size
    if limit is not None and limit < size:
        return FinalLeg(member, STATUS_TOO_LARGE, limit)        # Appendix O.1
    try:
        await session.deliver(message.body, message.content_type, headers=headers)
    except MediaError as exc:
        log.info("group large message to %s failed: %d %s", member, exc.status, exc.reason)
        return FinalLeg(member, exc.status)
    return FinalLeg(member, 200)


async def collect_legs(legs: Sequence[tuple[str, ServerSession]], message: MediaMessage,
                       headers: Sequence[tuple[str, str]], deadline: float) -> list[FinalLeg]:
    """§5.7.3: send each member's copy asking for reports and cache each outcome; at
    ``deadline`` (event-loop time) the members still without one get 408."""
    if not legs:
        return []
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_leg(m, s, message, headers)) for m, s in legs]
    await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
    out: list[FinalLeg] = []
    for (member, _), task in zip(legs, tasks, strict=True):
        if task.done() and not task.cancelled() and task.exception() is None:
            out.append(task.result())
        else:
            task.cancel()
            out.append(FinalLeg(member, 408))
    return out


def send_final_report(source: ServerSession, message: MediaMessage,
                      legs: Sequence[FinalLeg], status: int = 200) -> bytes | None:
    """The one report (``last="true"``) to the sender (§5.7.3: REPORT or SEND, see the
    module docstring); as a REPORT it is the success REPORT the sender asked for (held
    back at the acknowledgement), its Status ``status`` - what the acknowledgement said.
    The document, or None when the sender's session is gone."""
    doc = FinalReport(message.message_id, tuple(legs), last=True).to_bytes()
    if source.closed.is_set():
        log.info("final report for %s not sent: the sender's session ended",
                 message.message_id)
        return None
    try:
        if wants_msrp_reports(message):
            source.report(message.message_id, status, body=doc,
                          content_type=FINAL_REPORT_CONTENT_TYPE, size=len(message.body))
        else:
            ok = source.post(doc, FINAL_REPORT_CONTENT_TYPE, lambda exc: log.info(
                "final report SEND for %s failed: %s", message.message_id, exc))
            if not ok:
                return None
    except MediaError as exc:
        log.info("final report for %s not sent: %s", message.message_id, exc)
        return None
    return doc
