"""A TCP registration's flow, through the real gateway's sockets (RFC 5626 §5.3, RFC 3261 §18.2.2).

The gateway listens on a real TCP socket on 127.0.0.1; a client socket registers over it like a
softphone behind NAT (its Contact names a private address). While that connection is open, a call
to the phone is sent over it; once it closes, the binding stays (until it expires) and calls go
to the Contact as written.
"""

from __future__ import annotations

import asyncio

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.sip.auth import build_authorization
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message

CONTACT = "sip:1001@192.168.1.5:5060;transport=tcp"
CONFIG = """
[sip]
listen = ["tcp:127.0.0.1:0"]
realm = "flows.test"
[[sip.users]]
username = "1001"
password = "pw-flows"
[[sip.static_routes]]
match = "^1\\\\d{3}$"
target = "registered"
"""


def _register(host: str, port: int, local_port: int, cseq: int, authorization: str | None = None) -> bytes:
    headers = [
        ("Via", f"SIP/2.0/TCP 192.168.1.5:5060;branch=z9hG4bKflow{cseq};rport"),
        ("From", "<sip:1001@flows.test>;tag=f1"),
        ("To", "<sip:1001@flows.test>"),
        ("Call-ID", f"flow-{local_port}"),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", f"<{CONTACT}>"),
        ("Expires", "600"),
        ("Max-Forwards", "70"),
    ]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    return Request("REGISTER", f"sip:{host}:{port}", headers).to_bytes()


async def _response(reader: asyncio.StreamReader) -> Response:
    message = parse_message(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10))  # no body: Content-Length 0
    assert isinstance(message, Response)
    return message


async def test_tcp_registration_connection_carries_calls_until_it_closes() -> None:
    gateway = Gateway(parse_config(CONFIG))
    await gateway.start_sip()
    writer: asyncio.StreamWriter | None = None
    try:
        host, port = gateway.transports[0].address
        reader, writer = await asyncio.open_connection(host, port)
        local_port = writer.get_extra_info("sockname")[1]
        writer.write(_register(host, port, local_port, 1))
        challenge = await _response(reader)
        assert challenge.status == 401
        credentials = build_authorization(challenge.get("WWW-Authenticate") or "", method="REGISTER",
                                          uri=f"sip:{host}:{port}", username="1001", password="pw-flows",
                                          cnonce="c0ffee")
        writer.write(_register(host, port, local_port, 2, credentials))
        assert (await _response(reader)).status == 200

        flow = ("tcp", "127.0.0.1", local_port)
        assert gateway.b2bua.resolve(CONTACT, "1001") == (CONTACT, "tcp", flow, "192.168.1.5")

        writer.close()
        await writer.wait_closed()
        writer = None
        for _ in range(500):  # the gateway's side of the connection notices the close on a later loop turn
            if gateway.runtime is not None and not gateway.runtime.is_connected(flow):
                break
            await asyncio.sleep(0.01)
        assert gateway.b2bua.resolve(CONTACT, "1001") == (CONTACT, "tcp", ("tcp", "192.168.1.5", 5060), None)
        assert [b.contact for b in gateway.bindings.current("1001", asyncio.get_running_loop().time())] == [CONTACT]
    finally:
        if writer is not None:
            writer.close()
        gateway.stop_sip()
