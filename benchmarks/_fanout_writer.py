"""The minimal fan-out of benchmarks/group_fanout.py, run as a process of its own so that its
CPU time is measured apart from the readers: M MSRP SEND frames (one per message, paced at R/s)
written to N TCP connections to 127.0.0.1:PORT.  Each frame's Message-ID carries its send time
(time.perf_counter_ns(), CLOCK_MONOTONIC: the same clock in every process of the host).

    python benchmarks/_fanout_writer.py PORT N M R

Prints one line: the process CPU seconds spent from the first to the last write.
"""

from __future__ import annotations

import asyncio
import sys
import time


async def main(port: int, members: int, messages: int, rate: float) -> None:
    body = b"x" * 200
    writers = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(members)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(messages):
        frame = (f"MSRP t{i} SEND\r\nTo-Path: msrp://127.0.0.1:{port}/x;tcp\r\n"
                 f"From-Path: msrp://127.0.0.1:1/y;tcp\r\n"
                 f"Message-ID: m{time.perf_counter_ns()}\r\n"
                 f"Byte-Range: 1-{len(body)}/{len(body)}\r\nContent-Type: message/cpim\r\n"
                 f"\r\n").encode() + body + f"\r\n-------t{i}$\r\n".encode()
        for w in writers:
            w.write(frame)
        await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
    for w in writers:
        await w.drain()
    print(time.process_time() - cpu0, flush=True)
    for w in writers:                         # TCP delivers what was written before the FIN
        w.close()
    for w in writers:
        await w.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                     float(sys.argv[4])))
