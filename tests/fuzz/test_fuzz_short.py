"""Short fuzz run for CI: every target of the campaign (benchmarks/fuzz.py runs the long one)
on mutated real traffic; any exception outside the target's typed error family fails."""

from __future__ import annotations

import random

import pytest
from fuzz_targets import TARGETS, Target, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simpleim.errors import ContentError
from simpleim.sip.multipart import parse_multipart

_SEEDS: dict[str, list[bytes]] = {}


def _seeds(t: Target) -> list[bytes]:
    if t.name not in _SEEDS:
        _SEEDS[t.name] = t.seeds()
    return _SEEDS[t.name]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_exist_and_parse(name: str) -> None:
    """The seed corpus is real traffic that the target mostly accepts (else the mutations
    would only exercise the first error path)."""
    t = TARGETS[name]
    seeds = _seeds(t)
    assert seeds, name
    ok = 0
    for s in seeds:
        try:
            t.run(s)
            ok += 1
        except t.allowed:
            pass
    assert ok >= 1, name


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_traffic(name: str, seed: int) -> None:
    t = TARGETS[name]
    rng = random.Random(seed)
    seeds = _seeds(t)
    for _ in range(20):
        data = mutate(rng, seeds)
        try:
            t.run(data)
        except t.allowed:
            pass


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_random_bytes(name: str, data: bytes) -> None:
    t = TARGETS[name]
    try:
        t.run(data)
    except t.allowed:
        pass


def test_multipart_bare_cr_in_part_header_is_content_error() -> None:
    """Found by the campaign: was LocalProtocolError 500 from Headers.add."""
    body = b"--bnd\r\nContent-Disposition: a\rb\r\n\r\nx\r\n--bnd--\r\n"
    with pytest.raises(ContentError) as info:
        parse_multipart(body, "bnd")
    assert info.value.status == 400


async def test_server_request_path_on_mutated_traffic() -> None:
    """The server's request path (parse, validate, transaction, auth, routing) on mutated
    real traffic: no exception escapes, none reaches the event loop, no ERROR log line."""
    from fuzz_targets import ServerHarness

    seeds = _seeds(TARGETS["sip-message"])
    rng = random.Random(7)
    async with ServerHarness() as h:
        for i in range(400):
            await h.feed(mutate(rng, seeds))
            if i % 32 == 0:
                await h.drain()
        await h.drain()
        assert h.errors == []


async def test_server_regressions_found_by_the_campaign() -> None:
    """Inputs the long campaign found: an INVITE whose From has an unterminated quoted
    display name raised out of the endpoint while answering it (issue 7 item 3)."""
    from fuzz_targets import ServerHarness

    invite = (b'INVITE sip:bob@example.test SIP/2.0\r\n'
              b'Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKreg1\r\n'
              b'Max-Forwards: 70\r\nTo: <sip:bob@example.test>\r\n'
              b'From: "Alice <sip:alice@example.test>;tag=1\r\n'
              b'Call-ID: reg1@192.0.2.9\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n')
    async with ServerHarness() as h:
        assert await h.feed(invite) is None
        await h.drain()
        assert h.errors == []
