"""Hold every packet the kernel queues to an NFQUEUE for a fixed time, then let it go on.

    ip netns exec NS python -m tests.helpers.nfqueue_delay --queue 7 --delay-ms 20

The reordering half of tests/helpers/netns.py's faults: iptables queues a random share of the packets
here (`-j NFQUEUE`), every other packet goes straight through, so a packet sent during a held one's
delay overtakes it. The kernel keeps the packet; this process only gives each one its verdict (accept)
late, over the nfnetlink_queue protocol on a raw netlink socket (pure Python: no libnetfilter_queue).
It prints "ready" once bound, and exits on SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_ACCEPT = 1
_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("=BBH")
_NLATTR = struct.Struct("=HH")


def _attribute(kind: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def _message(kind: int, flags: int, queue: int, family: int, attributes: bytes, sequence: int) -> bytes:
    body = _NFGENMSG.pack(family, 0, socket.htons(queue)) + attributes
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, sequence, 0) + body


def _messages(data: bytes) -> list[tuple[int, bytes]]:
    """(type, payload after the netlink header) of every message in one datagram."""
    found = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        found.append((kind, data[offset + _NLMSGHDR.size:offset + length]))
        offset += (length + 3) & ~3
    return found


def _packet_id(payload: bytes) -> int | None:
    offset = _NFGENMSG.size
    while offset + _NLATTR.size <= len(payload):
        length, kind = _NLATTR.unpack_from(payload, offset)
        if length < _NLATTR.size:
            return None
        if kind & 0x3FFF == NFQA_PACKET_HDR:
            return int(struct.unpack_from("!I", payload, offset + _NLATTR.size)[0])
        offset += (length + 3) & ~3
    return None


def bind_queue(queue: int) -> socket.socket:
    """A netlink socket receiving queue `queue`'s packets (metadata only); raises if the kernel refuses."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    config = [
        _attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)),
        _attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
    ]
    for sequence, attribute in enumerate(config, 1):
        sock.send(_message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, queue, socket.AF_INET, attribute, sequence))
        for kind, payload in _messages(sock.recv(65536)):
            error = struct.unpack_from("=i", payload)[0] if kind == NLMSG_ERROR else 0
            if error:
                raise OSError(-error, f"nfqueue {queue}: the kernel refused the configuration")
    return sock


def serve(queue: int, delay_s: float) -> None:
    sock = bind_queue(queue)
    print("ready", flush=True)
    held: list[tuple[float, int]] = []
    while True:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([sock], [], [], wait)
        if readable:
            for kind, payload in _messages(sock.recv(65536)):
                packet = _packet_id(payload) if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET else None
                if packet is not None:
                    heapq.heappush(held, (time.monotonic() + delay_s, packet))
        while held and held[0][0] <= time.monotonic():
            _, packet = heapq.heappop(held)
            verdict = _attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet))
            sock.send(_message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, queue, socket.AF_UNSPEC, verdict, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=int, required=True)
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(options.queue, options.delay_ms / 1000)


if __name__ == "__main__":
    main()
