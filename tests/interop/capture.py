"""Helpers for the tshark captures of the interop tests.

* :func:`wait_capture_live`: dumpcap prints "Capturing on" slightly before it really captures,
  and under load writes late; probe with TCP handshakes (no payload: nothing for the SIP/MSRP
  checks to judge) until a probe is in the file, so no frame of the test is missed - at the
  start and before stopping the capture.
* :func:`check_msrp_capture`: the checks of pcap_check.sh, with MSRP judged per reassembled TCP
  stream (strict RFC 4975 §9 framing) instead of per segment: tshark 4.0's MSRP dissector
  reports a valid message as "Malformed Packet (Exception occurred)" when a TCP segment ends
  inside its end-line, and "Trailing stray characters" when a segment holds the start of the
  next message. Where segments end depends on load, so the per-segment verdict is flaky.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

from waiting import wait_until_sync

__all__ = ["CaptureIncomplete", "wait_capture_live", "check_msrp_capture", "msrp_framing_errors",
           "tshark_fields"]

#: tshark calls are bounded; generous for a loaded 2-core CI box
TSHARK_TIMEOUT = 120.0


def wait_capture_live(pcap: Path, port: int, timeout: float = 30.0) -> None:
    """Return once the capture on lo (whose filter includes TCP *port*) holds a probe sent now.

    Each probe is a TCP handshake to *port* (refused is fine: SYN + RST are captured too) from
    a source port of its own; the wait ends when tshark finds one of those source ports in the
    file - not merely when the file grew: under load dumpcap writes older packets late, and a
    capture stopped then would lose the test's last frames.  dumpcap writes in order, so every
    frame sent before the probe is in the file too."""
    sources: list[int] = []

    def probe_recorded() -> bool:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            sources.append(s.getsockname()[1])
            s.settimeout(0.5)
            s.connect_ex(("127.0.0.1", port))
        if not pcap.exists():
            return False
        flt = " || ".join(f"tcp.srcport=={p}" for p in sources)
        return bool(_run("tshark", "-r", str(pcap), "-Y", flt, "-T", "fields",
                         "-e", "frame.number").split())

    wait_until_sync(probe_recorded, timeout, what=f"capture {pcap} to record a probe",
                    interval=0.3)


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, timeout=TSHARK_TIMEOUT, check=False)
    return done.stdout.decode(errors="replace")


def tshark_fields(pcap: Path, decode: list[str], display: str) -> list[str]:
    out = _run("tshark", "-r", str(pcap), *decode, "-Y", display, "-T", "fields",
               "-e", "frame.number", "-e", "_ws.col.Protocol", "-e", "_ws.expert.message",
               "-E", "separator=|")
    return [line for line in out.splitlines() if line.strip()]


def _tcp_streams(pcap: Path, ports: list[int]) -> list[int]:
    flt = " || ".join(f"tcp.port=={p}" for p in ports)
    out = _run("tshark", "-r", str(pcap), "-Y", flt, "-T", "fields", "-e", "tcp.stream")
    return sorted({int(x) for x in out.split() if x.isdigit()})


def _follow_raw(pcap: Path, stream: int) -> dict[str, bytes]:
    """The bytes of both directions of one TCP stream, placed by sequence number.

    Not tshark's ``follow,tcp``: under load the loopback TCP retransmits (window full) with
    segment borders that differ from the original, and tshark 4.0's follow output then repeats
    or drops bytes - a framing "error" that is the tool's, not the sender's.  Payloads placed at
    their (relative) sequence numbers make retransmissions harmless; bytes the capture really
    missed are reported as such."""
    out = _run("tshark", "-r", str(pcap), "-Y", f"tcp.stream=={stream} && tcp.len>0",
               "-o", "tcp.relative_sequence_numbers:TRUE", "-T", "fields",
               "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.payload")
    parts: dict[str, dict[int, bytes]] = {}
    order: list[str] = []
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) != 4 or not fields[2].isdigit():
            continue
        key = f"{fields[0]}->{fields[1]}"
        if key not in parts:
            parts[key] = {}
            order.append(key)
        payload = bytes.fromhex(fields[3].replace(":", ""))
        seq = int(fields[2])
        if len(payload) > len(parts[key].get(seq, b"")):
            parts[key][seq] = payload
    data: dict[str, bytes] = {}
    for index, key in enumerate(order):
        buf = bytearray()
        base = min(parts[key])
        for seq in sorted(parts[key]):
            payload = parts[key][seq]
            at = seq - base
            if at > len(buf):
                raise CaptureIncomplete(f"tcp.stream {stream} {key}: the capture misses bytes "
                                        f"{len(buf)}..{at} (dumpcap dropped packets)")
            buf[at:at + len(payload)] = payload
        data["0->1" if index == 0 else "1->0"] = bytes(buf)
    return data


class CaptureIncomplete(AssertionError):
    """The capture lost packets: its framing cannot be judged."""


_START = re.compile(rb"MSRP ([A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}) "
                    rb"(?:[A-Z]+|[0-9]{3}(?: [^\r\n]*)?)\r\n")
_HEADER = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+: [^\r\n]*\r\n")


def msrp_framing_errors(data: bytes) -> tuple[int, list[str]]:
    """RFC 4975 §9 framing of a byte stream: start line, header lines, optional CRLF + body,
    end-line ``-------<transact-id>[$+#]`` - every byte accounted for.  Returns (messages,
    problems)."""
    pos = 0
    count = 0
    while pos < len(data):
        m = _START.match(data, pos)
        if m is None:
            return count, [f"no MSRP start line at byte {pos}: {data[pos:pos + 60]!r}"]
        tid = m.group(1)
        end = re.compile(rb"\r\n-------" + re.escape(tid) + rb"[$+#]\r\n")
        hdr = m.end()
        names: set[bytes] = set()
        while True:
            h = _HEADER.match(data, hdr)
            if h is None:
                break
            names.add(h.group(0).split(b":", 1)[0].lower())
            hdr = h.end()
        if not {b"to-path", b"from-path"} <= names:
            return count, [f"message {tid!r} at byte {pos} without To-Path/From-Path"]
        if data.startswith(b"-------" + tid, hdr):              # no body
            e = end.match(data, hdr - 2)
        elif data.startswith(b"\r\n", hdr):                   # CRLF, body, end-line
            e = end.search(data, hdr)
            if e is not None and b"content-type" not in names and e.start() > hdr + 2:
                return count, [f"message {tid!r} has a body but no Content-Type"]
        else:
            e = None
        if e is None:
            return count, [f"message {tid!r} at byte {pos}: bad header or no end-line"]
        pos = e.end()
        count += 1
    return count, []


def check_msrp_capture(pcap: Path, msrp_ports: list[int]) -> dict[str, object]:
    """Malformed frames and expert warnings of everything but MSRP (SIP, TCP, ...) - except
    tshark's JPEG dissector flagging the CRLF before the MSRP end-line as 'Trailing stray
    characters' after an image's EOI marker; MSRP: every reassembled TCP stream framed per
    RFC 4975 §9.  (pcap_check.sh's 'undissected' check does not apply: tshark's MSRP dissector
    does not reassemble a large chunk spread over several TCP segments.)"""
    decode = [arg for p in msrp_ports for arg in ("-d", f"tcp.port=={p},msrp")]
    malformed = tshark_fields(pcap, decode, "_ws.malformed && !msrp")
    warnings = tshark_fields(
        pcap, decode, "_ws.expert.severity >= 6291456 && !(_ws.expert.group == 0x02000000)"
        " && !msrp && !(jfif && _ws.expert.message == \"Trailing stray characters\")")
    sip = tshark_fields(pcap, decode, "sip")
    msrp = tshark_fields(pcap, decode, "msrp")
    framing: list[str] = []
    messages = 0
    for stream in _tcp_streams(pcap, msrp_ports):
        for direction, data in _follow_raw(pcap, stream).items():
            count, errors = msrp_framing_errors(data)
            messages += count
            framing += [f"tcp.stream {stream} {direction}: {e}" for e in errors]
    return {"malformed": malformed, "warnings": warnings, "sip_frames": len(sip),
            "msrp_frames": len(msrp), "msrp_framing": framing, "msrp_messages": messages}
