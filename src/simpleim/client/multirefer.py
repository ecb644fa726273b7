"""One REFER for several resources (RFC 5368 multiple-refer), shared by the deletion of
deferred messages (OMA SIMPLE IM §12.1.3.3, C-DM-03) and of histories (§13.1.6, C-CH-05).

The REFER goes to ``sip:Delete@DOMAIN`` with an ``application/resource-lists+xml`` body
(RFC 4826) listing the URIs, ``Refer-To`` a ``cid:`` URI pointing at that body (RFC 5368
§4, RFC 2392), ``Require: multiple-refer`` and ``Refer-Sub: false`` (RFC 4488: the outcome
is the REFER's final response, no implicit subscription).
"""

from __future__ import annotations

from collections.abc import Sequence

from simpleim.content.resource_lists import Entry, ResourceList, ResourceLists
from simpleim.sip.message import SipRequest

from .context import ClientContext
from .features import SIP_IM
from .pager import build_request, new_call_id, new_tag

__all__ = ["delete_refer"]


def delete_refer(ctx: ClientContext, uris: Sequence[str]) -> SipRequest:
    """The multiple-refer REFER to ``sip:Delete@DOMAIN`` for ``uris`` (in that order)."""
    cfg = ctx.config
    doc = ResourceLists((ResourceList(tuple(Entry(u) for u in uris)),))
    cid = f"{new_tag()}@{ctx.host}"
    return build_request(
        "REFER", target=f"sip:Delete@{cfg.domain}", from_uri=cfg.uri, from_tag=new_tag(),
        call_id=new_call_id(ctx.host), contact=ctx.contact,
        accept_contact=f"*;{SIP_IM}", body=doc.to_bytes(),
        content_type="application/resource-lists+xml",
        extra=(("Refer-To", f"<cid:{cid}>"), ("Refer-Sub", "false"),
               ("Require", "multiple-refer"), ("Content-ID", f"<{cid}>"),
               ("Content-Disposition", "recipient-list")))
