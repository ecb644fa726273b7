"""is-composing (RFC 3994): document and the sender / receiver state machines (§4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.content.iscomposing import (
    DEFAULT_REFRESH,
    RECEIVER_TABLE,
    SENDER_TABLE,
    ComposeReceiver,
    ComposeSender,
    ComposeState,
    IsComposing,
    ReceiverAction,
    ReceiverInput,
    SenderAction,
    SenderInput,
    parse_iscomposing,
)
from simpleim.errors import ContentError

#: RFC 3994 examples section (§6 in the RFC; the brief calls it §5): an active indication.
#: Element values cross-checked with two public transcriptions of the example.
RFC3994_EXAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">
  <state>active</state>
  <contenttype>text/plain</contenttype>
  <lastactive>2003-01-27T10:43:00Z</lastactive>
  <refresh>60</refresh>
</isComposing>"""

#: RFC 3994 examples section: the idle indication (an audio message was being composed).
RFC3994_IDLE_EXAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">
  <state>idle</state>
  <lastactive>2003-01-27T10:43:00Z</lastactive>
  <contenttype>audio</contenttype>
</isComposing>"""

#: seed 002, MSRP SEND J0PnsL7Ob7eNcIwTZY (CPM session): the RCS form.
RCS_EXAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<state>active</state>
<contenttype>text/plain</contenttype>
<refresh>60</refresh>
</isComposing>
"""


def test_rfc3994_example() -> None:
    doc = parse_iscomposing(RFC3994_EXAMPLE)
    assert doc == IsComposing(ComposeState.ACTIVE, "2003-01-27T10:43:00Z", "text/plain", 60)
    assert parse_iscomposing(doc.to_bytes()) == doc
    idle = parse_iscomposing(RFC3994_IDLE_EXAMPLE)
    assert idle == IsComposing(ComposeState.IDLE, "2003-01-27T10:43:00Z", "audio")
    assert parse_iscomposing(idle.to_bytes()) == idle


def test_rcs_example() -> None:
    assert parse_iscomposing(RCS_EXAMPLE) == IsComposing(ComposeState.ACTIVE, None,
                                                          "text/plain", 60)


def test_idle_document() -> None:
    doc = IsComposing(ComposeState.IDLE, lastactive="2003-01-27T10:43:00Z")
    assert parse_iscomposing(doc.to_bytes()) == doc


@pytest.mark.parametrize("xml", [
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"/>',
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>typing</state>'
    b"</isComposing>",
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>'
    b"<refresh>0</refresh></isComposing>",
    b'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>'
    b"<refresh>-5</refresh></isComposing>",
    b"<isComposing><state>active</state></isComposing>",
])
def test_invalid_documents(xml: bytes) -> None:
    with pytest.raises(ContentError) as exc:
        parse_iscomposing(xml)
    assert exc.value.status == 400


def test_tables_are_total() -> None:
    assert len(SENDER_TABLE) == len(ComposeState) * len(SenderInput)
    assert len(RECEIVER_TABLE) == len(ComposeState) * len(ReceiverInput)


def test_sender_typing_refresh_and_idle_timeout() -> None:
    """RFC 3994 §4: active on typing, refresh while active, idle after the idle timeout."""
    s = ComposeSender(idle_timeout=15, refresh=60)
    assert s.next_deadline() is None
    s, a = s.composing(0.0)
    assert a is SenderAction.SEND_ACTIVE and s.state is ComposeState.ACTIVE
    assert s.document(a) == IsComposing(ComposeState.ACTIVE, None, "text/plain", 60)
    assert s.next_deadline() == 15.0
    s, a = s.composing(10.0)                       # still typing: nothing to send
    assert a is SenderAction.NONE and s.next_deadline() == 25.0
    for t in range(11, 60, 10):                    # keeps typing for a minute
        s, a = s.composing(float(t))
        assert a is SenderAction.NONE
    assert s.next_deadline() == 60.0               # refresh due before idle timeout
    s, a = s.handle_timer(60.0)
    assert a is SenderAction.SEND_ACTIVE and s.state is ComposeState.ACTIVE
    assert s.next_deadline() == 51.0 + 15          # idle timeout now first
    s, a = s.handle_timer(66.0)
    assert a is SenderAction.SEND_IDLE and s.state is ComposeState.IDLE
    assert s.document(a, lastactive="2003-01-27T10:43:00Z") == \
        IsComposing(ComposeState.IDLE, "2003-01-27T10:43:00Z", "text/plain")
    assert s.next_deadline() is None


def test_sender_message_sent_goes_idle_silently() -> None:
    s, _ = ComposeSender().composing(0.0)
    s, a = s.message_sent(1.0)
    assert a is SenderAction.NONE and s.state is ComposeState.IDLE
    s2, a2 = s.handle_timer(1000.0)
    assert a2 is SenderAction.NONE and s2 == s


def test_sender_cleared_sends_idle() -> None:
    s, _ = ComposeSender().composing(0.0)
    s, a = s.step(SenderInput.CLEARED, 2.0)
    assert a is SenderAction.SEND_IDLE and s.state is ComposeState.IDLE
    assert s.document(SenderAction.NONE) is None


def test_early_timer_does_nothing() -> None:
    s, _ = ComposeSender().composing(0.0)
    assert s.handle_timer(1.0) == (s, SenderAction.NONE)


def test_receiver_refresh_expiry() -> None:
    """RFC 3994 §4: receiver drops to idle when the refresh interval runs out."""
    r = ComposeReceiver()
    r, a = r.receive(IsComposing(ComposeState.ACTIVE, refresh=60), 0.0)
    assert a is ReceiverAction.SHOW_ACTIVE and r.next_deadline() == 60.0
    r, a = r.receive(IsComposing(ComposeState.ACTIVE, refresh=60), 50.0)
    assert a is ReceiverAction.NONE and r.next_deadline() == 110.0
    assert r.handle_timer(100.0) == (r, ReceiverAction.NONE)
    r, a = r.handle_timer(110.0)
    assert a is ReceiverAction.SHOW_IDLE and r.state is ComposeState.IDLE
    assert r.next_deadline() is None


def test_receiver_default_refresh_idle_and_message() -> None:
    r, _ = ComposeReceiver().receive(IsComposing(ComposeState.ACTIVE), 0.0)
    assert r.next_deadline() == DEFAULT_REFRESH
    r2, a = r.receive(IsComposing(ComposeState.IDLE), 5.0)
    assert a is ReceiverAction.SHOW_IDLE and r2.state is ComposeState.IDLE
    r3, a = r.message_received(5.0)
    assert a is ReceiverAction.SHOW_IDLE and r3.state is ComposeState.IDLE
    r4, a = r3.message_received(6.0)
    assert a is ReceiverAction.NONE


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(SenderInput)), st.floats(0, 10)), max_size=30))
def test_sender_invariants(events: list[tuple[SenderInput, float]]) -> None:
    s, now = ComposeSender(), 0.0
    for ev, dt in events:
        now += dt
        s, a = s.step(ev, now)
        assert (s.next_deadline() is None) == (s.state is ComposeState.IDLE)
        if a is SenderAction.SEND_IDLE:
            assert s.state is ComposeState.IDLE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_content_error(data: bytes) -> None:
    try:
        parse_iscomposing(data)
    except ContentError:
        pass
