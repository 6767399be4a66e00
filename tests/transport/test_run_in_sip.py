"""`SipRuntime.run_in_sip`: work finished outside the SIP world (an async routing lookup) re-enters it
on the next loop turn and what it queued is sent at once. Real UDP sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from gateway.sip.endpoint import SipEndpoint
from gateway.sip.events import Event
from gateway.sip.message import Request
from gateway.transport.runtime import SipRuntime
from gateway.transport.udp import UdpTransport

HOST = "127.0.0.1"
WAIT = 5.0  # a bound on a hang, not a speed requirement


def _options(port: int) -> Request:
    return Request("OPTIONS", f"sip:{HOST}:{port}", [
        ("From", f"<sip:gw@{HOST}>;tag=g1"), ("To", f"<sip:x@{HOST}>"), ("Call-ID", "later"), ("CSeq", "1 OPTIONS"),
    ])


async def _runtime() -> tuple[SipRuntime, UdpTransport, list[Event]]:
    events: list[Event] = []
    endpoint = SipEndpoint(sent_by={"udp": (HOST, 0)})
    runtime = SipRuntime(endpoint, lambda event, now: events.append(event), asyncio.get_running_loop())
    udp = await UdpTransport.bind(runtime, HOST, 0)
    return runtime, udp, events


async def test_run_in_sip_runs_on_the_next_turn_and_sends_what_it_queued() -> None:
    runtime, udp, _ = await _runtime()
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind((HOST, 0))
        peer.setblocking(False)
        port = peer.getsockname()[1]
        ran: list[float] = []

        def decided(now: float) -> None:
            ran.append(now)
            runtime.endpoint.send_request(_options(port), ("udp", HOST, port), now)

        try:
            runtime.run_in_sip(decided)
            assert ran == []  # never inside the caller's own turn (it may be inside `pump`)
            data = await asyncio.wait_for(loop.sock_recv(peer, 65535), WAIT)
            assert data.startswith(b"OPTIONS sip:") and len(ran) == 1 and ran[0] <= loop.time()
        finally:
            udp.close()
            runtime.close()


async def test_run_in_sip_failing_is_logged_and_the_runtime_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    runtime, udp, _ = await _runtime()
    done = asyncio.Event()

    def broken(now: float) -> None:
        raise RuntimeError("router bug")

    try:
        with caplog.at_level(logging.ERROR, logger="gateway.transport.runtime"):
            runtime.run_in_sip(broken)
            runtime.run_in_sip(lambda now: done.set())
            await asyncio.wait_for(done.wait(), WAIT)
        assert any("run_in_sip" in record.getMessage() for record in caplog.records)
    finally:
        udp.close()
        runtime.close()
