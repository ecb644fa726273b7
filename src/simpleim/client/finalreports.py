"""Receiving the Final Delivery Report of a large message we sent (OMA SIMPLE IM §5.7.2).

The Controlling Function sends it in the sender's own session, as an MSRP REPORT with the
document as its body when we asked for MSRP reports (``Success-Report: yes``), else as an
MSRP SEND (§5.7.3 steps 1 / 2).  Either way the body's type is one of
:data:`~simpleim.content.final_report.FINAL_REPORT_TYPES` (the specification spells it
three ways; all are taken).  Each ``<leg>`` becomes a
:class:`~simpleim.client.events.FinalReportEvent`; an unreadable document an
:class:`~simpleim.client.events.ErrorEvent`.  Reports for another message are skipped
(NOTE 3: correlation by Message-ID).  The wait ends with the report marked
``last="true"``, the session's end, or ``timeout``.

A REPORT about our message without a report document is the recipient's own success /
failure REPORT (RFC 4975 §7.1.2): a message to one user, with no Controlling Function in
the media path (§5.7.4: a Participating Function passes REPORTs on).  It stands for that
one leg, last.  (Our Controlling Function sends no such REPORT for a message asking for
the final report: its report document is the success REPORT, §5.7.3 step 1.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

from simpleim.content.final_report import (
    FinalLeg,
    FinalReport,
    is_final_report_type,
    parse_final_report,
)
from simpleim.errors import ContentError, MsrpParseError
from simpleim.msrp import MemorySink, MsrpRequest
from simpleim.transport.msrp import EndpointSession

from .context import ClientContext
from .events import ErrorEvent, FinalReportEvent

__all__ = ["FinalReportWatch"]


class FinalReportWatch:
    """Collects the final report(s) arriving on ``stream`` (set up before the SEND)."""

    def __init__(self, ctx: ClientContext, stream: EndpointSession, peer: str) -> None:
        self.ctx = ctx
        self.stream = stream
        self.peer = peer
        self._bodies: asyncio.Queue[bytes | FinalReport | None] = asyncio.Queue()
        self.legs: list[FinalLeg] = []
        stream.on_report = self._on_report

    def _on_report(self, req: MsrpRequest, body: bytes) -> None:
        if body and is_final_report_type(req.content_type):
            self._bodies.put_nowait(body)              # §5.7.3 step 1: in a REPORT
            return
        try:
            status, mid = req.status, req.message_id
        except MsrpParseError:
            return
        if not body and status is not None and mid is not None:
            # the recipient's own REPORT (see the module docstring)
            self._bodies.put_nowait(FinalReport(mid, (FinalLeg(self.peer, status.code),),
                                                last=True))

    async def _sends(self) -> None:
        """§5.7.3 step 2: a SEND carrying the document."""
        while True:
            msg = await self.stream.receive()
            if is_final_report_type(msg.content_type) and isinstance(msg.sink, MemorySink):
                self._bodies.put_nowait(bytes(msg.sink.data))

    async def _ended(self, ended: asyncio.Event) -> None:
        await ended.wait()
        self._bodies.put_nowait(None)

    async def wait(self, ids: Collection[str], message_id: str, ended: asyncio.Event,
                   timeout: float) -> list[FinalLeg]:
        """Until the last report for one of ``ids`` (the MSRP and CPIM Message-IDs of our
        SEND), ``ended`` or ``timeout``: emits a FinalReportEvent per leg (under
        ``message_id``), returns the legs."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._sends()), loop.create_task(self._ended(ended))]
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while True:
                        body = await self._bodies.get()
                        if body is None:
                            break
                        report = self._take(body, ids, message_id)
                        if report is not None and report.last:
                            break
        finally:
            for task in tasks:
                task.cancel()
            self.stream.on_report = None
        return self.legs

    def _take(self, body: bytes | FinalReport, ids: Collection[str],
              message_id: str) -> FinalReport | None:
        try:
            report = body if isinstance(body, FinalReport) else parse_final_report(body)
        except ContentError as exc:
            self.ctx.emit(ErrorEvent(f"bad final report: {exc.detail}", exc.status,
                                     "final-report"))
            return None
        if report.message_id is not None and report.message_id not in ids:
            return None
        for leg in report.legs:
            self.legs.append(leg)
            self.ctx.emit(FinalReportEvent(message_id, leg.uri, leg.status, leg.max_size,
                                           report.last))
        return report
