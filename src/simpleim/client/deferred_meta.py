"""C-DM-02 / C-SET-01 (OMA SIMPLE IM §5.2.4, §12.1.2): with ``offline-delivery`` off the
client retrieves the Deferred Metadata from the IM XDMS after publishing its settings.

:func:`fetch_deferred_metadata` reads ``org.openmobilealliance.deferred-list`` over XCAP
(:class:`~simpleim.client.xcap.XcapClient`, the account's credentials; an ``https://``
root is verified like the SIP proxy's certificate) and the account emits one
:class:`~simpleim.client.events.DeferredListEvent` with what is stored.  Nothing is fetched
without ``xcap_root`` in the configuration; a failure is logged, never raised (the account
works on without an XDMS).
"""

from __future__ import annotations

import logging

from simpleim.errors import SimpleImError
from simpleim.transport import tls

from .config import ClientConfig
from .events import DeferredListEvent
from .xcap import XcapClient

__all__ = ["fetch_deferred_metadata"]

log = logging.getLogger("simpleim.client")


async def fetch_deferred_metadata(config: ClientConfig,
                                  timeout: float = 10.0) -> DeferredListEvent | None:
    """The stored messages' metadata as an event; None without an XDMS or on failure."""
    root = config.xcap_root
    if not root:
        return None
    context = tls.client_context(config.tls_ca, insecure=config.tls_insecure) \
        if root.startswith("https://") else None
    try:
        async with XcapClient(root, config.aor, config.password, timeout=timeout,
                              ssl_context=context) as client:
            items = await client.deferred_list()
    except (SimpleImError, OSError, TimeoutError) as exc:
        log.info("retrieving the deferred metadata failed: %s", exc)
        return None
    return DeferredListEvent(
        references=tuple(i.reference for i in items),
        senders=tuple(i.sender for i in items),
        dates=tuple(i.date for i in items),
        subjects=tuple(i.subject for i in items))
