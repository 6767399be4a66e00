"""Registrations survive a restart: real SIPp registers with digest, the real gateway process stops
and starts again on the same SQLite file, and a call to the extension rings the phone.

Each test runs its own gateway processes (own directory, database file and free ports), never the
shared session gateway, and stops them by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    HOST,
    USER_1001_PASSWORD,
    GatewayProcess,
    Sipp,
    free_port,
    start_gateway,
    stop_gateway,
    wait_exit,
)

OK = 0

UNREGISTER_ALL = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Contact: * with Expires: 0 after a digest challenge: the phone drops every binding (RFC 3261 10.2.2). -->
<scenario name="unregister all with digest">
  <send retrans="500"><![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: *
      Expires: 0
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: *
      Expires: 0
      [authentication]
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


class Gateways:
    """Starts gateway processes on one directory (so one SQLite file), each on fresh ports."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: list[GatewayProcess] = []

    def start(self) -> GatewayProcess:
        gateway = start_gateway(self.directory, log_name=f"gateway-{len(self.running) + 1}.log")
        self.running.append(gateway)
        return gateway

    @staticmethod
    def stop(gateway: GatewayProcess) -> int:
        """SIGTERM (a clean stop: the last registrations are flushed), then wait for the exit code."""
        return stop_gateway(gateway)

    def stop_all(self) -> None:
        for gateway in self.running:
            self.stop(gateway)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    directory = tmp_path / "gw"
    directory.mkdir()
    runner = Gateways(directory)
    try:
        yield runner
    finally:
        runner.stop_all()


def _register(sipp: Sipp, gateway: GatewayProcess, phone_port: int) -> None:
    registration = sipp.run(
        "register_digest.xml", "-s", "1001", "-au", "1001", "-ap", USER_1001_PASSWORD,
        "-key", "contact_port", str(phone_port), f"{HOST}:{gateway.sip_port}",
    )
    assert registration.returncode == OK, sipp.errors() + gateway.log()[-3000:]


def test_a_registered_phone_rings_after_the_gateway_restarts(gateways: Gateways, sipp: Sipp) -> None:
    first = gateways.start()
    phone_port = free_port()
    _register(sipp, first, phone_port)
    assert gateways.stop(first) == 0, first.log()[-3000:]

    second = gateways.start()
    assert "restored 1 registration(s)" in second.log(), second.log()[-3000:]
    phone = sipp.start("uas_answer.xml", port=phone_port)
    caller = sipp.run("uac_call.xml", "-s", "1001", f"{HOST}:{second.sip_port}")
    assert caller.returncode == OK, sipp.errors() + second.log()[-3000:]
    assert wait_exit(phone) == OK, sipp.errors()


def test_an_unregistered_phone_stays_unregistered_after_the_restart(gateways: Gateways, sipp: Sipp) -> None:
    """The removal is saved too: after REGISTER, Contact: * and a restart, the extension is 480."""
    scenario = sipp.directory / "unregister_all.xml"
    scenario.write_text(UNREGISTER_ALL)
    first = gateways.start()
    _register(sipp, first, free_port())
    unregister = sipp.run(str(scenario), "-s", "1001", "-au", "1001", "-ap", USER_1001_PASSWORD,
                          f"{HOST}:{first.sip_port}")
    assert unregister.returncode == OK, sipp.errors() + first.log()[-3000:]
    assert gateways.stop(first) == 0, first.log()[-3000:]

    second = gateways.start()
    assert "restored 0 registration(s)" in second.log(), second.log()[-3000:]
    caller = sipp.run("uac_expect_unavailable.xml", "-s", "1001", f"{HOST}:{second.sip_port}")
    assert caller.returncode == OK, sipp.errors() + second.log()[-3000:]
