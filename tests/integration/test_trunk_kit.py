"""The trunk kit itself (tests/integration/trunk.py) against a scripted SIPp callee.

On a lossy wire (test_lossy_network.py) the trunk's ACK can be lost, and the gateway's 200 to the
INVITE, retransmitted, then crosses the trunk's BYE. The trunk must not take that 200 for its BYE's
answer: it ACKs it again and sends the BYE again until the BYE itself is answered. The callee here
makes that crossing happen on every call instead of once in a few hundred.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.integration.sipp_kit import SippProcess
from tests.integration.trunk import TrunkCall, call_from_trunk

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "uas_2xx_crosses_bye.xml"


@dataclass(frozen=True)
class ScriptedCallee:
    sip_port: int
    log_path: Path


def test_a_2xx_that_crosses_the_bye_is_acked_again_and_the_bye_waits_for_its_own_200(tmp_path: Path) -> None:
    callee = SippProcess(tmp_path / "callee", "callee", ["-sf", str(SCENARIO), "-m", "1", "-nr"], lifetime_s=20)
    try:
        run = call_from_trunk(ScriptedCallee(callee.port, tmp_path / "callee.log"), TrunkCall("0184880000"),
                              talk_ms=100, time_limit_s=15)
        assert callee.wait(10) == 0, callee.errors()
    finally:
        callee.stop()
    [call] = run.calls
    sent = [m.method for m in run.messages if m.sent]
    assert call.ok and call.bye_statuses == (200,), run.explain()
    assert sent == ["INVITE", "ACK", "BYE", "ACK", "BYE"], (sent, run.explain())
