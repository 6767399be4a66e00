"""SPEC T1: the gateway registers at a provider's trunk, with real SIPp as the provider's registrar.

A real `Gateway` listens on UDP in this process; the trunk is handed to its `TrunkRegistrations`
inside the SIP loop, as the routing directory's reload does. SIPp (docker/sipp/provider_registrar*.xml)
challenges every REGISTER with digest and checks the answer with its own verifyauth, so a 200 in
its trace is a verified registration. Back-off and the transaction timeout are shortened so each
test stays within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest

from gateway import metrics
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.sip.timers import TimerSettings
from gateway.trunks.model import TrunkKind, TrunkSpec, TrunkTrust
from gateway.trunks.registration import RegistrationState
from tests.integration.conftest import HOST, SCENARIOS
from tests.integration.sipp_kit import SipMessage, SippProcess

SECRET = "it-trunk-Secret-4821"
USERNAME = "gw-acme"
CONFIG = f"""
[sip]
listen = ["udp:{HOST}:0"]
realm = "gw.test"
"""


def provider_trunk(port: int, register_expires: int = 60) -> TrunkSpec:
    return TrunkSpec(id=1, name="acme", kind=TrunkKind.PROVIDER, host=HOST, port=port,
                     trust=TrunkTrust.REGISTRATION, username=USERNAME, secret=SECRET,
                     register_expires=register_expires)


def provider(directory: Path, scenario: str, *, expires: int, password: str = SECRET) -> SippProcess:
    return SippProcess(directory, scenario.removesuffix(".xml"), [
        "-sf", str(SCENARIOS / scenario), "-key", "username", USERNAME, "-key", "password", password,
        "-key", "realm", "provider.test", "-key", "expires", str(expires),
    ], lifetime_s=40)


@asynccontextmanager
async def gateway_registering(trunk: TrunkSpec, *, t1: float = 0.5) -> AsyncIterator[Gateway]:
    gateway = Gateway(parse_config(CONFIG))
    gateway.endpoint.settings = TimerSettings(t1=t1)
    gateway.trunk_registrations.backoff_base, gateway.trunk_registrations.backoff_cap = 1.0, 4.0
    await gateway.start_sip()
    try:
        gateway.run_in_sip(lambda now: gateway.trunk_registrations.sync({trunk.id: trunk}, now))
        yield gateway
    finally:
        gateway.stop_sip()


async def eventually(condition: Callable[[], bool], within: float, what: str, explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within} s\n{explain()}")
        await asyncio.sleep(0.02)


def answers(sipp: SippProcess, status: int, *, expires: str | None = None) -> list[SipMessage]:
    """What SIPp answered with `status`; with `expires`, only answers to REGISTERs asking for it."""
    messages = sipp.messages()
    found = []
    for index, message in enumerate(messages):
        if message.sent and message.status == status:
            asked = [m for m in messages[:index] if not m.sent and m.call_id == message.call_id
                     and (m.header("CSeq") or "") == (message.header("CSeq") or "")]
            if expires is None or (asked and asked[-1].header("Expires") == expires):
                found.append(message)
    return found


def explain(gateway: Gateway, sipp: SippProcess) -> Callable[[], str]:
    return lambda: f"status: {gateway.trunk_registrations.status(1)}\nsipp errors: {sipp.errors()}"


def assert_secret_kept(caplog: pytest.LogCaptureFixture, *sipps: SippProcess) -> None:
    assert SECRET not in caplog.text
    for sipp in sipps:
        assert all(SECRET not in message.text for message in sipp.messages())


async def test_t1_registers_at_the_provider_with_digest_and_refreshes_before_expiry(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sipp = provider(tmp_path, "provider_registrar.xml", expires=4)
    try:
        await asyncio.sleep(0.2)  # SIPp binds its port
        async with gateway_registering(provider_trunk(sipp.port)) as gateway:
            registrations = gateway.trunk_registrations
            await eventually(lambda: len(answers(sipp, 200)) >= 1, 5, "the first registration", explain(gateway, sipp))
            first = registrations.status(1)
            assert first is not None and first["state"] == "registered" and first["last_status"] == 200
            assert first["registrar"] == f"{HOST}:{sipp.port}"
            assert registrations.trusted_source(HOST, sipp.port) == 1
            granted = registrations.registration(1)
            assert granted is not None and granted.registered_until is not None
            # SIPp granted 4 s of the 60 asked: refreshed at half of that, each one challenged and verified.
            await eventually(lambda: len(answers(sipp, 200)) >= 3, 7, "two refreshes", explain(gateway, sipp))
            later = registrations.registration(1)
            assert later is not None and later.state is RegistrationState.REGISTERED
            assert later.registered_until is not None and later.registered_until >= granted.registered_until + 3.5
            assert len(answers(sipp, 401)) >= 3 and answers(sipp, 403) == []
            assert len({message.call_id for message in sipp.messages()}) == 1
            exposition = metrics.render(gateway.metrics_registry)[0].decode()
            assert 'gateway_trunk_registered{trunk="acme"} 1.0' in exposition

            await gateway.unregister_trunks(grace=3.0)
            assert registrations.pending_unregisters == 0 and registrations.status(1) is None
            # The gateway had the 200 to its unregister; SIPp's message log may show it a moment later.
            await eventually(lambda: len(answers(sipp, 200, expires="0")) >= 1, 2, "the unregister's 200 in SIPp's log",
                             lambda: sipp.errors())
            assert len(answers(sipp, 200, expires="0")) == 1
    finally:
        sipp.stop()
    assert_secret_kept(caplog, sipp)


async def test_t1_provider_refusing_with_403_then_accepting_is_retried_after_backoff(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sipp = provider(tmp_path, "provider_registrar_403_first.xml", expires=30)
    try:
        await asyncio.sleep(0.2)
        async with gateway_registering(provider_trunk(sipp.port)) as gateway:
            registrations = gateway.trunk_registrations
            await eventually(lambda: len(answers(sipp, 403)) == 1, 5, "the 403", explain(gateway, sipp))
            await eventually(lambda: (registrations.status(1) or {}).get("last_status") == 403, 2, "failing on 403",
                             explain(gateway, sipp))
            failing = registrations.status(1)
            assert failing is not None and failing["state"] == "failing" and failing["last_reason"] == "Forbidden"
            assert failing["next_attempt"] is not None
            await eventually(lambda: (registrations.status(1) or {}).get("state") == "registered", 5,
                             "registration after the back-off", explain(gateway, sipp))
            recovered = registrations.status(1)
            assert recovered is not None and recovered["failures"] == 1 and recovered["failures_in_a_row"] == 0
            assert 'gateway_trunk_registration_failures_total{trunk="acme"} 1.0' in (
                metrics.render(gateway.metrics_registry)[0].decode())
    finally:
        sipp.stop()
    assert "trunk acme: registration failing (403 Forbidden)" in caplog.text
    assert_secret_kept(caplog, sipp)


async def test_t1_wrong_secret_is_refused_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sipp = provider(tmp_path, "provider_registrar.xml", expires=30, password="what-the-provider-has")
    try:
        await asyncio.sleep(0.2)
        async with gateway_registering(provider_trunk(sipp.port)) as gateway:
            registrations = gateway.trunk_registrations
            await eventually(lambda: (registrations.status(1) or {}).get("state") == "failing", 5,
                             "failing on refused credentials", explain(gateway, sipp))
            status = registrations.status(1)
            assert status is not None and status["last_status"] == 403 and answers(sipp, 200) == []
            assert registrations.trusted_source(HOST, sipp.port) is None
    finally:
        sipp.stop()
    assert_secret_kept(caplog, sipp)


async def test_t1_provider_that_disappears_times_out_backs_off_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sipp = provider(tmp_path, "provider_registrar.xml", expires=4)
    try:
        await asyncio.sleep(0.2)
        # T1 = 50 ms: a REGISTER times out (Timer F, 64*T1) after 3.2 s instead of 32 s.
        async with gateway_registering(provider_trunk(sipp.port), t1=0.05) as gateway:
            registrations = gateway.trunk_registrations
            await eventually(lambda: len(answers(sipp, 200)) >= 1, 5, "the registration", explain(gateway, sipp))
            sipp.stop()
            await eventually(lambda: (registrations.status(1) or {}).get("state") == "failing", 8,
                             "failing once the provider is gone", explain(gateway, sipp))
            first = registrations.registration(1)
            status = registrations.status(1)
            assert first is not None and status is not None
            assert (status["last_status"], first.failures_in_a_row) == (408, 1)
            assert "Timeout" in (status["last_reason"] or "")
            assert datetime.fromisoformat(status["next_attempt"]).timestamp() > time.time() - 1
            assert first.next_attempt is not None
            failed_at = first.next_attempt - 1.0  # base 1 s for the first failure
            await eventually(lambda: (registrations.registration(1) or first).failures_in_a_row == 2, 8,
                             "the retry failing too", explain(gateway, sipp))
            second = registrations.registration(1)
            assert second is not None and second.state is RegistrationState.FAILING and second.next_attempt is not None
            # The retry went at the first back-off, timed out after 3.2 s, and now waits twice as long
            # (a loaded machine may run the timers a little late, never early).
            assert 1.0 + 3.2 + 2.0 - 0.05 <= second.next_attempt - failed_at <= 1.0 + 3.2 + 2.0 + 1.0
            exposition = metrics.render(gateway.metrics_registry)[0].decode()
            assert 'gateway_trunk_registered{trunk="acme"} 0.0' in exposition
            assert 'gateway_trunk_registration_failures_total{trunk="acme"} 2.0' in exposition
    finally:
        sipp.stop()
    assert "registration failing (408" in caplog.text
    assert_secret_kept(caplog, sipp)


async def test_t1_admin_api_reads_the_registrations_from_its_state() -> None:
    gateway = Gateway(parse_config(CONFIG))
    app = gateway.admin_server().config.app
    assert app.state.trunk_registrations is gateway.trunk_registrations
    assert app.state.trunk_registrations.status(1) is None
