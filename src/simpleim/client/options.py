"""Capability discovery of an account with SIP OPTIONS (GSMA IR.79 §2.3), both directions.

``account.capabilities.query("bob")`` sends OPTIONS (retried on 480, IR.79 §2.3) and keeps
the answer for ``capability_ttl`` seconds; an incoming OPTIONS is answered 200 with our
feature tags and the single-message-m-line SDP.  The sans-I/O parts are in
:mod:`simpleim.client.capabilities`.
"""

from __future__ import annotations

import asyncio

from simpleim.transport.sip import IncomingRequest

from .capabilities import (
    CapabilityCache,
    CapabilityResult,
    build_options,
    options_answer_sdp,
    options_headers,
    result_of,
    retry_decision,
)
from .context import ClientContext
from .events import CapabilitiesEvent
from .features import USER_AGENT
from .pager import new_call_id, new_tag, normalize_uri

__all__ = ["CapabilityQueries"]


class CapabilityQueries:
    """OPTIONS queries with a cache, and the answer to the peers' queries."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.cache = CapabilityCache(ctx.config.capability_ttl)

    async def query(self, to: str, *, use_cache: bool = True) -> CapabilityResult:
        """OPTIONS capability query (IR.79 §2.3) with the 480 retry rule; cached."""
        ctx = self.ctx
        cfg = ctx.config
        target = normalize_uri(to, cfg.domain)
        if use_cache:
            cached = self.cache.get(target, ctx.now())
            if cached is not None:
                ctx.emit(CapabilitiesEvent(target, cached.status, cached.names, True))
                return cached
        attempt = 0
        while True:
            req = build_options(target=target, from_uri=cfg.uri, from_tag=new_tag(),
                                call_id=new_call_id(ctx.host), contact=ctx.contact)
            resp = await ctx.ua.request(req)
            if not retry_decision(resp.status, attempt, cfg.options_retries):
                break
            attempt += 1
            await asyncio.sleep(cfg.options_retry_delay)
        result = result_of(target, resp, ctx.now())
        self.cache.put(result)
        ctx.emit(CapabilitiesEvent(target, result.status, result.names, False))
        return result

    def on_options(self, inc: IncomingRequest) -> None:
        """Answer OPTIONS with our tags and the IR.79 §2.3 SDP (one message m-line)."""
        ctx = self.ctx
        resp = inc.request.create_response(200, to_tag=new_tag())
        for k, v in options_headers(ctx.contact):
            resp.headers.add(k, v)
        resp.headers.add("User-Agent", USER_AGENT)
        accept = inc.request.headers.get("Accept") or "application/sdp"
        if "application/sdp" in accept.lower():
            resp.body = options_answer_sdp(ctx.msrp.advertise_host,
                                           max_size=ctx.config.max_file_size)
            resp.headers.add("Content-Type", "application/sdp")
        inc.respond(resp)
