"""Shared helpers of the benchmarks: sample messages, timing, machine info, the JSON result line."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def _crlf(lines: list[str]) -> bytes:
    return "\r\n".join(lines).encode()


def _with_body(head: list[str], body_lines: list[str], final_crlf: bool = True) -> bytes:
    body = "\r\n".join(body_lines) + ("\r\n" if final_crlf else "")
    head = [*head, f"Content-Length: {len(body.encode())}", "", ""]
    return _crlf(head) + body.encode()


# Reconstructed on the wire from the CPM 2.0 / RCS 5.1 pager-mode trace (step 1, "UE -> NW SIP
# MESSAGE") in the project's messaging-flow notes: same header set and order, CPIM body with the
# IMDN request; the trace's elided values ("..." in Contact) are filled with the address of the
# Via, the mis-labelled "NS (Session-Expires)" line is the CPIM "NS:" header, and Content-Length
# is recomputed.
MESSAGE_SAMPLE: bytes = _with_body(
    [
        "MESSAGE sip:+12345678901@xxx.com;user=phone SIP/2.0",
        "P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg",
        "Contribution-ID: 477b66ae9662e3ad18549bf5dabf9d26d5e707ca",
        "Conversation-ID: 1710887c7ca47dc2c1274c11673eb0df5a604fd3",
        "P-Preferred-Identity: <sip:00101123456789@xxx.com>",
        "Request-Disposition: no-fork",
        "User-Agent: Samsung IMS 5.0",
        "CSeq: 1 MESSAGE",
        "Max-Forwards: 70",
        "P-Access-Network-Info: 3GPP-E-UTRAN-FDD;utran-cell-id-3gpp=0010100010000000",
        "Route: <sip:[2001:0:0:1::2]:5060;lr>",
        'Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"',
        "Content-Type: message/cpim",
        "From: <sip:00101123456789@xxx.com>;tag=1384874566",
        "Call-ID: 3712948749@2001::1:88fe:fccf:2870:5dee",
        "Contact: <sip:00101123456789@[2001::1:88fe:fccf:2870:5dee]:5060>"
        ';+sip.instance="<urn:gsma:imei:35469106-056673-0>"',
        "To: <sip:+12345678901@xxx.com;user=phone>",
        "Via: SIP/2.0/TCP [2001::1:88fe:fccf:2870:5dee]:5060"
        ";branch=z9hG4bK2629405539smg;transport=TCP",
    ],
    [
        "From: <sip:00101123456789@xxx.com>",
        "To: <sip:+12345678901@xxx.com;user=phone>",
        "DateTime: 2015-02-17T06:54:27Z",
        "NS: imdn <urn:ietf:params:imdn>",
        "imdn.Message-ID: PH7qAIV8cgH5",
        "imdn.Disposition-Notification: positive-delivery, display",
        "",
        "Content-type: text/plain;charset=UTF-8",
        "Content-Length: 15",
        "",
        "123456789abcdef",
    ],
    final_crlf=False,
)

# Reconstructed from the CPM session trace (step 1, "UE -> NW SIP INVITE") of the same notes:
# header set and order kept, the elided Contact user part and branch filled in, SDP with the
# MSRP media line as traced.
INVITE_SAMPLE: bytes = _with_body(
    [
        "INVITE sip:+12893255768@xxx.com;user=phone SIP/2.0",
        "Supported: timer",
        "Conversation-ID: 750192017fe0025714ed411b84364ae39a12447d",
        "Contribution-ID: b1dcd3bac531c373dbe2edfe554137c5b6b603ec",
        "P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session",
        "P-Preferred-Identity: <tel:+12893255769>",
        "P-Early-Media: supported",
        "Allow: INVITE,ACK,OPTIONS,CANCEL,BYE,UPDATE,INFO,REFER,NOTIFY,MESSAGE,PRACK",
        "User-Agent: Samsung IMS 5.0",
        'Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session"',
        "P-Access-Network-Info: 3GPP-E-UTRAN-FDD;utran-cell-id-3gpp=00101d6e5845db02",
        "Session-Expires: 3600;refresher=uac",
        "Min-SE: 90",
        "Content-Type: application/sdp",
        "Route: <sip:172.16.138.68:5060;lr>",
        "From: <tel:+12893255769>;tag=3818778252",
        "To: <sip:+12893255768@xxx.com;user=phone>",
        "Call-ID: 3287620225@172.16.80.82",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
        "Contact: <sip:+12893255769@172.16.80.82:5060>"
        ';+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session"',
        "Via: SIP/2.0/UDP 172.16.80.82:5060;branch=z9hG4bK9265903smg;transport=UDP;rport",
    ],
    [
        "v=0",
        "o=SAMSUNG-IMS-UE 1234564 0 IN IP4 172.16.80.82",
        "s=SS VOIP",
        "i=A VOIP Session",
        "c=IN IP4 172.16.80.82",
        "t=0 0",
        "m=message 9 TCP/MSRP *",
        "a=accept-types:message/cpim application/im-iscomposing+xml",
        "a=accept-wrapped-types:text/plain message/imdn+xml",
        "a=setup:active",
        "a=path:msrp://172.16.80.82:8881/vrhyu7FpMQRki1rQtp;tcp",
        "a=sendrecv",
    ],
)

SAMPLES: dict[str, bytes] = {"message": MESSAGE_SAMPLE, "invite": INVITE_SAMPLE}


def variants(data: bytes, n: int = 16) -> list[bytes]:
    """*n* copies of a sample differing in the Call-ID (so no parser can profit from seeing
    the very same bytes again, e.g. through a cache keyed on the input)."""
    return [
        re.sub(rb"(Call-ID: [^@\r\n]*)", lambda m, i=i: m.group(1) + b"-%d" % i, data, count=1)
        for i in range(n)
    ]


def rate(fn: Callable[[bytes], object], data: bytes, iterations: int, repeats: int) -> float:
    """Best-of-*repeats* calls per second of ``fn`` over *iterations* calls on variants of
    *data* (see :func:`variants`)."""
    datas = variants(data)
    k = len(datas)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(iterations):
            fn(datas[i % k])
        best = min(best, time.perf_counter() - t0)
    return iterations / best if best > 0 else float("inf")


def machine() -> dict[str, Any]:
    """Where the figures come from (uvloop matters: the server uses it when installed)."""
    try:
        import uvloop

        uv: str | None = uvloop.__version__
    except ImportError:
        uv = None
    try:
        load: float | None = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "python": platform.python_version(),
        "impl": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "uvloop": uv,
        "loadavg_1min": load,
    }


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last output line (one JSON object)."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=False), flush=True)
