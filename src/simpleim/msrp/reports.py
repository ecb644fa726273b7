"""REPORT requests with a body (RFC 4975 §7.1.2), sans-I/O.

§7.1.2: "REPORT requests will normally not include a body ... However, REPORT requests MAY
include a body containing additional information about the status of the associated SEND
request"; REPORTs are not chunked and never answered.  Used for the OMA Final Delivery
Report (OMA SIMPLE IM §5.7.3 step 1: an MSRP REPORT carrying the report document).
"""

from __future__ import annotations

from collections.abc import Sequence

from simpleim.errors import LocalProtocolError, MsrpParseError
from simpleim.msrp.message import ByteRange, MsrpRequest, MsrpStatus, make_request
from simpleim.msrp.uri import MsrpUri

__all__ = ["MAX_REPORT_BODY", "add_report_body", "make_report"]

#: the largest REPORT body kept or sent (one request, no chunking, §7.1.2)
MAX_REPORT_BODY = 64 * 1024


def make_report(tid: str, to_path: Sequence[MsrpUri], from_uri: MsrpUri, message_id: str,
                status: MsrpStatus, *, byte_range: ByteRange | None = None,
                body: bytes = b"", content_type: str | None = None) -> MsrpRequest:
    """§7.1.2: To-Path / From-Path, the SEND's Message-ID, Byte-Range, Status, no
    Success-Report / Failure-Report; a body with its Content-Type (§7.1.1).
    LocalProtocolError for a body too large or without a type."""
    if len(body) > MAX_REPORT_BODY:
        raise LocalProtocolError(f"REPORT body above {MAX_REPORT_BODY} bytes")
    if body and not content_type:
        raise LocalProtocolError("a REPORT body needs a Content-Type (RFC 4975 §7.1.1)")
    headers = [("Message-ID", message_id),
               ("Byte-Range", str(byte_range or ByteRange(1, None, None))),
               ("Status", str(status))]
    if body and content_type:
        headers.append(("Content-Type", content_type))
    return make_request(tid, "REPORT", list(to_path), [from_uri], headers, body or None)


def add_report_body(body: bytearray | None, data: bytes | memoryview) -> bytearray:
    """Append received ``data`` to a REPORT's body; MsrpParseError 413 above
    :data:`MAX_REPORT_BODY` (the REPORT is then dropped)."""
    out = body if body is not None else bytearray()
    if len(out) + len(data) > MAX_REPORT_BODY:
        raise MsrpParseError(f"REPORT body above {MAX_REPORT_BODY} bytes", status=413,
                             where="body")
    out += data
    return out
