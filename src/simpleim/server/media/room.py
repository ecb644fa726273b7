"""The MSRP copier of the server: a :class:`Room` of N legs, each a
:class:`~simpleim.server.media.api.ServerSession` that ends at the server.

What arrives on one leg goes, as the :class:`RoomPolicy` says (by default: to every other
leg), into the bounded send queue of each destination leg; one writer per leg sends from its
queue.  So a slow leg never stalls the reading of the others:

* ``Overflow.DROP`` (a conference, OMA SIMPLE IM §7.2.3): a leg whose queue is full is
  dropped (BYE, reason "too slow") - the others go on;
* ``Overflow.WAIT`` (a 2-leg B2BUA, PO-00): the reader of the sending leg waits, which stops
  reading its MSRP connection (TCP flow control back to the sender); the other direction has
  its own reader and writer and is not affected.

A :class:`Recorder` sees every message that passes (Conversation History, §13.2); messages
above ``max_size`` are not copied (the legs' ``a=max-size`` makes the endpoint answer 413
first, RFC 4975 §8.6).  With fewer than ``min_legs`` legs left the room ends and BYEs the
remaining ones.  Messages below ``switch_threshold`` are reassembled (bounded by the leg's
:class:`~simpleim.msrp.ReceiveLimits`) and go through the policy and recorder; larger ones
of known size are switched chunk by chunk as they arrive (:mod:`.switch`) when the room has
the default policy and no recorder wants it (:meth:`Recorder.recording`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from simpleim.errors import ProtocolError, SimpleImError
from simpleim.msrp import ChunkSink, MemorySink, MsrpRequest, PipeSource
from simpleim.server.media.api import (
    MediaError,
    MediaMessage,
    MessageRefused,
    ServerSession,
    SessionEnded,
)
from simpleim.server.media.session import MediaSession
from simpleim.server.media.switch import Outlet, SwitchSink

__all__ = ["SWITCH_THRESHOLD", "CopyToOthers", "Leg", "Overflow", "Recorder", "Room", "RoomPolicy"]

log = logging.getLogger("simpleim.server.media")

#: Messages from this size on are switched chunk by chunk (64 KiB: one default chunk).
SWITCH_THRESHOLD = 64 * 1024


class Overflow(enum.Enum):
    DROP = "drop"    # drop the destination leg whose queue is full
    WAIT = "wait"    # the sender waits (flow control back to it)


class Leg:
    """One participant of a room: its session and its bounded send queue."""

    def __init__(self, room: Room, session: ServerSession, name: str, limit: int) -> None:
        self.room = room
        self.session = session
        self.name = name
        self.queue: asyncio.Queue[MediaMessage] = asyncio.Queue(limit)
        self.tasks: list[asyncio.Task[None]] = []
        self.left: str | None = None
        self.received = 0
        self.sent = 0

    def __repr__(self) -> str:
        return f"<Leg {self.name} {self.session.peer}>"


class RoomPolicy(Protocol):
    """Where a received message goes (the CF switch: CPIM From checks, private messages,
    aliases...).  Return the (leg, message) copies to send - possibly rewritten."""

    def route(self, room: Room, sender: Leg, message: MediaMessage
              ) -> Sequence[tuple[Leg, MediaMessage]]: ...


class Recorder(Protocol):
    """Sees every message that passes the room, before it is copied, with the legs the
    policy copies it to (a conference's private message reaches only its addressee)."""

    def recording(self, room: Room) -> bool:
        """Whether messages of ``room`` may be recorded (then they are reassembled whole
        for :meth:`record` instead of being switched chunk by chunk)."""

    async def record(self, sender: Leg, message: MediaMessage,
                     to: Sequence[Leg]) -> None: ...


class CopyToOthers:
    """The default policy: every other leg gets the message as it is."""

    def route(self, room: Room, sender: Leg, message: MediaMessage
              ) -> Sequence[tuple[Leg, MediaMessage]]:
        return [(leg, message) for leg in room.legs if leg is not sender]


class Room:
    """N legs copying MSRP messages to each other (2 legs: a back-to-back relay)."""

    def __init__(self, *, policy: RoomPolicy | None = None, recorder: Recorder | None = None,
                 queue_limit: int = 64, max_size: int | None = None,
                 overflow: Overflow = Overflow.DROP, min_legs: int = 2,
                 switch_threshold: int | None = SWITCH_THRESHOLD,
                 hold_acks: bool = False) -> None:
        self.policy: RoomPolicy = policy or CopyToOthers()
        #: each message is answered (200, or the status of a :class:`MessageRefused` the
        #: policy raised) only once the policy has routed it
        self.hold_acks = hold_acks
        #: messages of at least this many bytes are switched chunk by chunk as they arrive
        #: (only with the default policy and no recorder, which see whole messages)
        self.switch_threshold = switch_threshold
        self.recorder = recorder
        self.queue_limit = queue_limit
        self.max_size = max_size
        self.overflow = overflow
        self.min_legs = min_legs
        self._legs: list[Leg] = []
        self._all: list[Leg] = []
        self._byes: set[asyncio.Task[None]] = set()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None

    @property
    def legs(self) -> list[Leg]:
        return list(self._legs)

    def add(self, session: ServerSession, name: str) -> Leg:
        """Put ``session`` in the room; copying starts at once."""
        if self.ended.is_set():
            raise MediaError(481, "the room has ended")
        leg = Leg(self, session, name, self.queue_limit)
        if self.hold_acks:
            session.hold_acknowledgements()
        if isinstance(session, MediaSession) and self.switch_threshold is not None:
            session.stream.receive_with(self._sink_factory(leg))
        self._legs.append(leg)
        self._all.append(leg)
        loop = asyncio.get_running_loop()
        leg.tasks = [loop.create_task(self._read(leg)), loop.create_task(self._write(leg))]
        return leg

    def _sink_factory(self, leg: Leg) -> Callable[[MsrpRequest], ChunkSink]:
        """Where a message arriving on ``leg`` goes: switched to the other legs as it
        arrives (large, of known size, default policy, no recorder), else into memory
        for the reader (whole-message path)."""

        def factory(req: MsrpRequest) -> ChunkSink:
            try:
                br = req.byte_range
            except ProtocolError:
                br = None
            threshold = self.switch_threshold
            if (br is None or br.total is None or threshold is None or br.total < threshold
                    or self._recorded() or not isinstance(self.policy, CopyToOthers)
                    or (self.max_size is not None and br.total > self.max_size)):
                return MemorySink()
            source = leg.session
            if not isinstance(source, MediaSession):  # pragma: no cover - checked in add
                return MemorySink()
            start = br.start - 1
            sink = SwitchSink(source.stream, start)
            outlets: list[Outlet] = []
            for dest in self._legs:
                if dest is leg or dest.left is not None \
                        or not isinstance(dest.session, MediaSession):
                    continue
                pipe = PipeSource()
                try:
                    out = dest.session.stream.send_source(
                        pipe, br.total, req.content_type or "application/octet-stream",
                        offset=start, failure_report="partial")
                except (SimpleImError, OSError) as exc:
                    log.info("room: cannot switch a message to %s: %s", dest.name, exc)
                    continue
                outlets.append(Outlet(dest.session.stream, pipe, out))
                dest.sent += 1
            sink.add(outlets)
            leg.received += 1
            return sink

        return factory

    def _recorded(self) -> bool:
        return self.recorder is not None and self.recorder.recording(self)

    async def _read(self, leg: Leg) -> None:
        async for event in leg.session.events():
            if isinstance(event, SessionEnded):
                self.remove(leg, event.reason)
                return
            leg.received += 1
            if self.max_size is not None and event.size > self.max_size:
                log.info("room: %d-byte message from %s above max-size %d, not copied",
                         event.size, leg.name, self.max_size)
                leg.session.acknowledge(event, 413)         # RFC 4975 §7.2 (when held)
                continue
            try:
                routes = self.policy.route(self, leg, event)
            except MessageRefused as exc:
                log.info("room: message from %s refused (%d %s)", leg.name, exc.status,
                         exc.reason)
                leg.session.acknowledge(event, exc.status)
                continue
            leg.session.acknowledge(event)                  # a no-op unless held
            if self.recorder is not None and routes:
                try:
                    # as the policy copied it (an anonymous sender's alias, §7.2.3.2)
                    await self.recorder.record(leg, routes[0][1],
                                               [dest for dest, _ in routes])
                except (SimpleImError, OSError) as exc:
                    # a recorder failure is logged; the conversation goes on
                    log.error("room: the recorder failed on a message from %s: %s",
                              leg.name, exc)
            for dest, copy in routes:
                if self.overflow is Overflow.WAIT:
                    if dest.left is None and not self._post(dest, copy):
                        await dest.queue.put(copy)
                else:
                    self.deliver(dest, copy)
            # let the writers take what was queued before the next message is read: a burst
            # of messages already received is not mistaken for a slow leg
            await asyncio.sleep(0)

    def _post(self, dest: Leg, copy: MediaMessage) -> bool:
        """Write ``copy`` to ``dest`` at once when nothing of ``dest`` is queued: every
        earlier copy already left its queue (the writer takes one and hands it to the
        stream in one step), so the order holds; no task switch per copy."""
        if dest.queue.empty() and dest.session.post(
                copy.body, copy.content_type, partial(self._post_failed, dest)):
            dest.sent += 1
            return True
        return False

    def deliver(self, dest: Leg, copy: MediaMessage) -> None:
        """Send ``copy`` to ``dest`` (a copy of the room's own, e.g. a conference's system
        message, §7.2.3.5): at once or through its queue; a leg whose queue is full is
        dropped (BYE ``too slow``) - ``Overflow.DROP`` whatever the room's mode."""
        if dest.left is not None or self._post(dest, copy):
            return
        try:
            dest.queue.put_nowait(copy)
        except asyncio.QueueFull:
            log.warning("room: %s does not keep up (%d messages queued): dropped",
                        dest.name, self.queue_limit)
            self.remove(dest, "too slow: send queue full", bye=True)

    async def _write(self, leg: Leg) -> None:
        while True:
            msg = await leg.queue.get()
            try:
                # Failure-Report: partial - the writer never waits for the peer's 200s: a
                # read paused for back-pressure on this leg's connection (its sender is
                # too fast) would otherwise hold them back, and the two directions of a
                # B2BUA could wait for each other for ever
                await leg.session.send(msg.body, msg.content_type, confirmed=False)
            except MediaError as exc:
                log.info("room: a message to %s failed: %s", leg.name, exc)
                if exc.status in (408, 481):
                    self.remove(leg, f"MSRP send failed: {exc.status}", bye=True)
                    return
                continue
            leg.sent += 1

    def _post_failed(self, leg: Leg, exc: MediaError) -> None:
        log.info("room: a message to %s failed: %s", leg.name, exc)
        if exc.status in (408, 481):
            self.remove(leg, f"MSRP send failed: {exc.status}", bye=True)

    def remove(self, leg: Leg, reason: str, *, bye: bool = False) -> None:
        """Take ``leg`` out (it left, or is dropped with ``bye``); fewer than ``min_legs``
        left ends the room."""
        if leg.left is not None:
            return
        leg.left = reason
        if leg in self._legs:
            self._legs.remove(leg)
        current = asyncio.current_task()
        for task in leg.tasks:
            if task is not current:
                task.cancel()
        if bye:
            task = asyncio.get_running_loop().create_task(leg.session.bye(reason))
            self._byes.add(task)
            task.add_done_callback(self._byes.discard)
        if len(self._legs) < self.min_legs and not self.ended.is_set():
            self.end(f"{leg.name} left: {reason}")

    def end(self, reason: str) -> None:
        """End the room: BYE every leg still in it."""
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        for leg in list(self._legs):
            self.remove(leg, reason, bye=True)

    async def wait(self) -> None:
        """Until the room ended and every leg's session closed."""
        await self.ended.wait()
        for leg in self._all:
            await leg.session.closed.wait()
