"""Real SIPp through the real gateway process: calls, failures, CANCEL, REGISTER, TCP, OPTIONS.

SIPp exit codes: 0 every call succeeded, 1 some failed, 99 none processed, 254/255 fatal.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.integration.conftest import (
    HOST,
    SCENARIOS,
    USER_1001_PASSWORD,
    GatewayProcess,
    Sipp,
    free_port,
    wait_exit,
)

OK = 0


def _gw(gateway: GatewayProcess) -> str:
    return f"{HOST}:{gateway.sip_port}"


def test_basic_call_with_sdp_through_the_gateway(gateway: GatewayProcess, sipp: Sipp) -> None:
    callee = sipp.start("uas_answer.xml", port=gateway.trunk_port)
    caller = sipp.run("uac_call.xml", "-s", "2000", _gw(gateway))
    assert caller.returncode == OK, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(callee) == OK, sipp.errors()


def test_busy_callee_gives_486_to_the_caller(gateway: GatewayProcess, sipp: Sipp) -> None:
    callee = sipp.start("uas_busy.xml", port=gateway.trunk_port)
    caller = sipp.run("uac_expect_busy.xml", "-s", "2001", _gw(gateway))
    assert caller.returncode == OK, sipp.errors()
    assert wait_exit(callee) == OK, sipp.errors()


def test_cancel_while_ringing_gives_487_and_cancels_the_callee(gateway: GatewayProcess, sipp: Sipp) -> None:
    callee = sipp.start("uas_ring_no_answer.xml", port=gateway.trunk_port)
    caller = sipp.run("uac_cancel_while_ringing.xml", "-s", "2002", _gw(gateway))
    assert caller.returncode == OK, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(callee) == OK, sipp.errors()


def test_unknown_user_gets_404(gateway: GatewayProcess, sipp: Sipp) -> None:
    caller = sipp.run("uac_expect_not_found.xml", "-s", "999", _gw(gateway))
    assert caller.returncode == OK, sipp.errors()


def test_unregistered_extension_gets_480(gateway: GatewayProcess, sipp: Sipp) -> None:
    caller = sipp.run("uac_expect_unavailable.xml", "-s", "1999", _gw(gateway))
    assert caller.returncode == OK, sipp.errors()


def test_options_to_the_gateway_is_200(gateway: GatewayProcess, sipp: Sipp) -> None:
    probe = sipp.run("options_ping.xml", _gw(gateway))
    assert probe.returncode == OK, sipp.errors()


def test_register_with_digest_then_call_the_registered_extension(gateway: GatewayProcess, sipp: Sipp) -> None:
    phone_port = free_port()
    registration = sipp.run(
        "register_digest.xml", "-s", "1001", "-au", "1001", "-ap", USER_1001_PASSWORD,
        "-key", "contact_port", str(phone_port), _gw(gateway),
    )
    assert registration.returncode == OK, sipp.errors()
    phone = sipp.start("uas_answer.xml", port=phone_port)
    caller = sipp.run("uac_call.xml", "-s", "1001", _gw(gateway))
    assert caller.returncode == OK, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(phone) == OK, sipp.errors()


def test_register_with_a_wrong_password_is_refused(gateway: GatewayProcess, sipp: Sipp) -> None:
    registration = sipp.run(
        "register_digest.xml", "-s", "1001", "-au", "1001", "-ap", "wrong",
        "-key", "contact_port", str(free_port()), _gw(gateway),
    )
    assert registration.returncode != OK  # the second answer is 401 again, not the expected 200


def test_tcp_caller_basic_call(gateway: GatewayProcess, sipp: Sipp) -> None:
    callee = sipp.start("uas_answer.xml", port=gateway.trunk_port)
    caller = sipp.run("uac_call.xml", "-t", "t1", "-s", "2003", _gw(gateway))
    assert caller.returncode == OK, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(callee) == OK, sipp.errors()


def test_tcp_callee_basic_call(gateway: GatewayProcess, sipp: Sipp) -> None:
    callee = sipp.start("uas_answer.xml", "-t", "t1", port=gateway.tcp_trunk_port)
    caller = sipp.run("uac_call.xml", "-s", "3000", _gw(gateway))
    assert caller.returncode == OK, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(callee) == OK, sipp.errors()


def test_builtin_sipp_uac_and_uas_as_the_benchmark_uses_them(gateway: GatewayProcess, sipp: Sipp) -> None:
    callee = sipp.start("sn:uas", port=gateway.trunk_port, calls=3)
    caller = sipp.run("sn:uac", "-s", "2004", "-r", "10", "-d", "50", _gw(gateway), calls=3)
    assert caller.returncode == OK, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(callee, timeout=30) == OK, sipp.errors()


def _register_and_capture(gateway: GatewayProcess, sipp: Sipp) -> str:
    """A real SIPp REGISTER with digest; the Authorization it sent, as an eavesdropper would see it."""
    trace = sipp.directory / "register_messages.log"
    first = sipp.run("register_digest.xml", "-s", "1001", "-au", "1001", "-ap", USER_1001_PASSWORD,
                     "-key", "contact_port", str(free_port()), "-trace_msg", "-message_file", str(trace),
                     _gw(gateway))
    assert first.returncode == OK, sipp.errors()
    found = re.search(r"^Authorization: (.+?)\r?$", trace.read_text(errors="replace"), re.MULTILINE)
    assert found is not None
    return found.group(1)


def test_replayed_register_gets_stale_and_the_phone_recovers(gateway: GatewayProcess, sipp: Sipp) -> None:
    """RFC 7616 §3.4: the same nonce and nc again is answered 401 stale=true; the fresh nonce works."""
    captured = _register_and_capture(gateway, sipp)
    replay = sipp.run("register_replay.xml", "-s", "1001", "-au", "1001", "-ap", USER_1001_PASSWORD,
                      "-key", "contact_port", str(free_port()), "-key", "authorization", captured, _gw(gateway))
    assert replay.returncode == OK, sipp.errors()  # the scenario checks stale=true, then gets 200


def test_replayed_register_without_the_password_binds_nothing(gateway: GatewayProcess, sipp: Sipp) -> None:
    captured = _register_and_capture(gateway, sipp)
    attacker = sipp.run("register_replay.xml", "-s", "1001", "-au", "1001", "-ap", "not-the-password",
                        "-key", "contact_port", str(free_port()), "-key", "authorization", captured, _gw(gateway))
    assert attacker.returncode != OK  # 401 stale, then 401 again: never the expected 200


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    """Poll SIPp's message trace until `text` shows (the phone is registered), or fail when it exited."""
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path.name}")


def test_tcp_phone_is_called_over_the_connection_it_registered_on(gateway: GatewayProcess, sipp: Sipp) -> None:
    """RFC 5626 §5.3 / RFC 3261 §18.2.2: a TCP softphone that accepts no connections (its Contact
    names a port where nothing listens) gets the INVITE, ACK and BYE on its registration's connection."""
    trace = sipp.directory / "phone_messages.log"
    phone = sipp.start(
        "register_then_answer_tcp.xml", "-t", "t1", "-oocsf", str(SCENARIOS / "register_then_answer_tcp_ooc.xml"),
        "-s", "1001", "-au", "1001", "-ap", USER_1001_PASSWORD, "-key", "contact_port", str(free_port()),
        "-trace_msg", "-message_file", str(trace), _gw(gateway),
    )
    _wait_for(trace, "CSeq: 2 REGISTER", phone, time.monotonic() + 10)
    _wait_for(trace, "SIP/2.0 200", phone, time.monotonic() + 10)
    caller = sipp.run("uac_call.xml", "-s", "1001", _gw(gateway))
    assert caller.returncode == OK, sipp.errors() + gateway.log()[-3000:]
    assert wait_exit(phone) == OK, sipp.errors() + gateway.log()[-3000:]
    messages = trace.read_text(errors="replace")
    assert re.search(r"^BYE sip:1001@", messages, re.MULTILINE)  # the callee's own hang-up request came
