"""Waiting in tests: for a condition, never for a duration.

``await wait_until(pred, timeout, what=...)`` polls ``pred`` (a plain or async callable) until
it returns something truthy and returns that value; when ``timeout`` passes first it raises
``AssertionError`` naming what was awaited - a wait never gives up silently.  ``timeout`` is an
upper bound for a broken run, not a duration the test relies on: a slow machine only waits
longer for the same outcome.

``wait_until_sync`` is the same for code outside an event loop (subprocess peers, file locks).

This module is the only place in tests/ allowed to sleep; tests/test_suite_hygiene.py checks.
To prove that something did *not* arrive, do not wait "long enough": send a sentinel on the same
path that must arrive after it, wait for the sentinel, then assert nothing else came first.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["POLL", "wait_until", "wait_until_sync"]

T = TypeVar("T")

#: how often a condition is polled (seconds)
POLL = 0.01


async def wait_until(predicate: Callable[[], T | Awaitable[T]], timeout: float = 10.0, *,
                     what: str | None = None, interval: float = POLL) -> T:
    """Poll ``predicate`` until truthy; its value, or AssertionError after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for "
                                 f"{what or _describe(predicate)} (last value {value!r})")
        await asyncio.sleep(interval)


def wait_until_sync(predicate: Callable[[], T], timeout: float = 10.0, *,
                    what: str | None = None, interval: float = POLL * 5) -> T:
    """:func:`wait_until` for code that runs outside an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for "
                                 f"{what or _describe(predicate)} (last value {value!r})")
        time.sleep(interval)


def _describe(predicate: Callable[..., object]) -> str:
    name = getattr(predicate, "__qualname__", repr(predicate))
    try:
        source = inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return name
    return source if len(source) < 160 else name
