"""`python -m bench.flooder SOURCE HOST:PORT RATE SECONDS`: INVITEs from one address, as fast as asked.

Each INVITE is new (its own Call-ID and branch) and carries no credentials: what a toll-fraud script or
a broken PBX sends. Paced in 1 ms slices; prints how many it sent.
"""

from __future__ import annotations

import socket
import sys
import time


def invite(source: str, port: int, target: str, serial: int) -> bytes:
    return (
        f"INVITE sip:0044201234{serial % 10000:04d}@{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bKflood{serial:x}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:flood@{source}>;tag=f{serial:x}\r\nTo: <sip:0044201234@{target}>\r\n"
        f"Call-ID: flood-{serial:x}@{source}\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@{source}:{port}>\r\n"
        "User-Agent: pbx\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def flood(source: str, target: tuple[str, int], rate: int, seconds: float) -> int:
    """Send `rate` INVITEs a second for `seconds` from `source`; the number sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                try:
                    sock.sendto(invite(source, port, target[0], sent), target)
                except BlockingIOError:
                    break
                sent += 1
            # Answers (407s before the block) are read and thrown away so our buffer never stalls us.
            try:
                while sock.recv(65535):
                    pass
            except BlockingIOError:
                pass
            time.sleep(0.001)
        return sent


def main(argv: list[str]) -> int:
    source, target, rate, seconds = argv
    host, _, port = target.rpartition(":")
    print(f"flooder: sent {flood(source, (host, int(port)), int(rate), float(seconds))} INVITEs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
