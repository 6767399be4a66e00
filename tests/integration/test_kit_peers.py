"""The kit's own SIPp peers (tests/integration/trunk.py, phones.py) against scripted counterparts.

On a lossy wire (test_lossy_network.py) the peers meet what a clean loopback rarely shows, once in a
few hundred calls; here a scripted SIPp counterpart makes it happen on every call:
- the trunk's ACK is lost, and the gateway's 200 to the INVITE, retransmitted, crosses the trunk's
  BYE: the trunk must not take that 200 for its BYE's answer, but send the BYE again until the BYE
  itself is answered;
- a phone gets the ACK of its 200 twice (the gateway ACKs every copy of the 200 that reaches it):
  the phone must go on talking, not take the second ACK for a stray request and drop the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import HOST
from tests.integration.phones import start_phone
from tests.integration.sipp_kit import SippProcess
from tests.integration.trunk import TrunkCall, call_from_trunk

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


@dataclass(frozen=True)
class ScriptedPeer:
    sip_port: int
    log_path: Path


def test_a_2xx_that_crosses_the_bye_sends_the_bye_again_and_the_call_waits_for_its_own_200(tmp_path: Path) -> None:
    callee = SippProcess(tmp_path / "callee", "callee", ["-sf", str(SCENARIOS / "uas_2xx_crosses_bye.xml"),
                                                         "-m", "1", "-nr"], lifetime_s=20)
    try:
        run = call_from_trunk(ScriptedPeer(callee.port, tmp_path / "callee.log"), TrunkCall("0184880000"),
                              talk_ms=100, time_limit_s=15)
        assert callee.wait(10) == 0, callee.errors()
    finally:
        callee.stop()
    [call] = run.calls
    sent = [m.method for m in run.messages if m.sent]
    assert call.ok and call.bye_statuses == (200,), run.explain()
    assert sent == ["INVITE", "ACK", "BYE", "BYE"], (sent, run.explain())


def test_a_phone_that_gets_its_200_acked_twice_talks_on_until_the_bye(tmp_path: Path) -> None:
    place = tmp_path / "phone.log"
    phone = start_phone(ScriptedPeer(0, place), "5999", "", mode="unregistered", directory=tmp_path)
    try:
        caller = SippProcess(tmp_path / "caller", "caller", [
            "-sf", str(SCENARIOS / "uac_double_ack.xml"), "-s", "5999", "-m", "1", "-nr",
            f"{HOST}:{phone.port}"], lifetime_s=20)
        try:
            assert caller.wait(15) == 0, caller.errors() + phone.explain()
        finally:
            caller.stop()
        [call] = phone.calls()
        assert call.final_status == 200 and call.hung_up_by == "gateway" and call.ended, phone.explain()
        assert [m.method for m in phone.messages() if not m.sent] == ["INVITE", "ACK", "ACK", "BYE"]
    finally:
        phone.stop()

