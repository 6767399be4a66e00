"""An async router on the real loop: the B2BUA runs in this process on real UDP sockets, the router
decides after an `await` and hands its decision back through `SipRuntime.run_in_sip`; real SIPp
processes are the caller and the callee (SIPp exit code 0: every call succeeded)."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from gateway.b2bua.controller import B2bua
from gateway.b2bua.events import CallEvent
from gateway.b2bua.observer import ObserverSet
from gateway.b2bua.static_router import StaticRouter
from gateway.config import StaticRoute
from gateway.registrar import BindingStore, Registrar
from gateway.registrar.gate import DigestGate
from gateway.routing.request import Deliver, RouteRequest
from gateway.sip.endpoint import SipEndpoint
from gateway.transport.runtime import SipRuntime
from gateway.transport.udp import UdpTransport
from tests.b2bua.harness import SECRET, USERS, Recorder
from tests.integration.conftest import HOST, Sipp, free_port

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="needs SIPp (Debian sip-tester)")
LOOKUP = 0.2  # how long the router's "database" takes


class SlowRouter:
    """Decides like `inner`, but only after an awaited lookup, from a task of its own."""

    def __init__(self, inner: StaticRouter) -> None:
        self.inner = inner
        self.runtime: SipRuntime | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.asked = 0

    def route(self, request: RouteRequest, deliver: Deliver) -> None:
        self.asked += 1
        task = asyncio.get_running_loop().create_task(self._lookup(request, deliver))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _lookup(self, request: RouteRequest, deliver: Deliver) -> None:
        await asyncio.sleep(LOOKUP)
        assert self.runtime is not None
        self.inner.route(request, lambda decision, _: self.runtime.run_in_sip(  # type: ignore[union-attr]
            lambda now: deliver(decision, now)))


async def _sipp(runner: Sipp, scenario: str, *args: str, port: int | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *runner.command(scenario, *args, port=port), cwd=runner.directory,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


async def test_r1_call_routed_after_an_async_lookup_connects_end_to_end(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    sip_port, trunk_port = free_port(), free_port()
    endpoint = SipEndpoint(sent_by={"udp": (HOST, sip_port)})
    gate = DigestGate(SECRET, "test", 300.0, USERS)
    registrar = Registrar(BindingStore(), gate, min_expires=60)
    router = SlowRouter(StaticRouter([StaticRoute("trunk", re.compile(r"^2\d{3}$"), f"sip:{HOST}:{trunk_port}")],
                                     registrar.store))
    recorder = Recorder()
    b2bua = B2bua(endpoint, ObserverSet([recorder]), router, registrar, gate,  # type: ignore[arg-type,list-item]
                  lambda host, port: True)
    runtime = SipRuntime(endpoint, b2bua.handle, loop)
    router.runtime = runtime
    udp = await UdpTransport.bind(runtime, HOST, sip_port)
    b2bua.set_contact("udp", HOST, sip_port)
    runner = Sipp(tmp_path)
    processes: list[asyncio.subprocess.Process] = []
    try:
        callee = await _sipp(runner, "uas_answer.xml", port=trunk_port)
        processes.append(callee)
        await asyncio.sleep(0.2)  # let it bind before anyone calls it
        caller = await _sipp(runner, "uac_call.xml", "-s", "2000", f"{HOST}:{sip_port}")
        processes.append(caller)
        assert await asyncio.wait_for(caller.wait(), 30) == 0, runner.errors()
        assert await asyncio.wait_for(callee.wait(), 30) == 0, runner.errors()
        events: list[CallEvent] = recorder.events
        assert router.asked == 1 and [type(e).__name__ for e in events] == ["CallOffered", "CallAnswered", "CallEnded"]
        assert events[1].setup_seconds >= LOOKUP  # type: ignore[union-attr]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        udp.close()
        runtime.close()
