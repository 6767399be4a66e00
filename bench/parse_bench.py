"""Parser micro-benchmark: parses of a realistic ~1 KB INVITE per second on one core.

Each round parses the datagram of another call (see `_new_call`) and reads what the transaction layer
needs (Call-ID, CSeq, top Via branch, From and To tags). Run: ``python -m bench.parse_bench``.
"""

from __future__ import annotations

import time

from gateway.sip.parser import parse_message, use_speedups

INVITE = (
    b"INVITE sip:+4930123456@gw.example.net;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f60718;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:alice@203.0.113.10:5060;transport=udp>\r\n"
    b"To: <sip:+4930123456@gw.example.net;user=phone>\r\n"
    b'From: "Alice Example" <sip:alice@pbx.example.org>;tag=8f3a1c2b\r\n'
    b"Call-ID: 9b7c4d2e-8a1f-4c3b-9d6e-1f2a3b4c5d6e@203.0.113.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Supported: replaces, norefersub, timer\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"User-Agent: ExamplePhone 5.3.2\r\n"
    b"Allow-Events: presence, kpml, talk\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 368\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 203.0.113.10\r\n"
    b"s=ExamplePhone\r\n"
    b"c=IN IP4 203.0.113.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 9 18 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=maxptime:150\r\n"
    b"a=sendrecv\r\n"
    b"a=rtcp:49171 IN IP4 203.0.113.10\r\n"
    b"a=ssrc:1234567890 cname:alice@example\r\n"
)


def _new_call(serial: int) -> bytes:
    """INVITE as a trunk sends it for a new call: its own branch, From tag, Call-ID and dialled number.

    Every round parses a message of another call, so nothing the parser may remember about one
    call (or one value) flatters the figure; what repeats is what repeats per peer in real traffic.
    """
    return (
        INVITE.replace(b"a1b2c3d4e5f60718", b"%016x" % (serial * 2654435761 % 2**64))
        .replace(b"8f3a1c2b", b"%08x" % (serial * 40503 % 2**32))
        .replace(b"9b7c4d2e", b"%08x" % serial)
        .replace(b"+4930123456", b"+49301%05d" % (serial * 7 % 100000))
    )


CALLS = [_new_call(serial) for serial in range(1000)]


def _one_round(data: bytes) -> None:
    message = parse_message(data)
    _ = (message.call_id, message.cseq, message.top_via.branch, message.from_tag, message.to_tag)


def parse_per_second(seconds: float = 2.0) -> float:
    """Parses (plus the transaction-layer reads) per CPU second of this process, over `seconds`.

    CPU time rather than wall time: the figure is "on one core" even when the machine is shared.
    """
    _one_round(INVITE)
    count = 0
    started = time.process_time()
    deadline = started + seconds
    while True:
        for data in CALLS:
            _one_round(data)
        count += len(CALLS)
        now = time.process_time()
        if now >= deadline:
            return count / (now - started)


def serialise_per_second(seconds: float = 1.0) -> float:
    """`to_bytes()` calls per CPU second on the parsed INVITE (the writer runs for every message sent)."""
    message = parse_message(INVITE)
    count = 0
    started = time.process_time()
    deadline = started + seconds
    while True:
        for _ in range(1000):
            message.to_bytes()
        count += 1000
        now = time.process_time()
        if now >= deadline:
            return count / (now - started)


def main() -> None:
    """Print the figures: with the C fast path (when built) and with the Python parser alone."""
    label = "C fast path" if use_speedups(True) else "C fast path not built"
    print(f"parse_message: {len(INVITE)}-byte INVITE, {parse_per_second():,.0f} parses/s (CPU time, {label})")
    use_speedups(False)
    print(f"parse_message: {len(INVITE)}-byte INVITE, {parse_per_second():,.0f} parses/s (CPU time, Python alone)")
    use_speedups(True)
    print(f"to_bytes:      {serialise_per_second():,.0f} serialisations/s (CPU time)")


if __name__ == "__main__":
    main()
