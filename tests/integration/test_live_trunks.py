"""Trunks end to end (SPEC T1, R4): real SIPp as a provider that challenges INVITEs, as an employee's
phone calling out, and as a customer's PBX that registers to the gateway with its trunk's credentials.

The test gateway trusts 127.0.0.1 as a trunk (its configuration, and the demo's trunk), so whoever must
authenticate here calls from an address of its own: the employee's phone from 127.0.0.5, the PBX from
127.0.0.6, a stranger from 127.0.0.7; the provider listens on 127.0.0.3.
"""

from __future__ import annotations

import itertools
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import SCENARIOS, GatewayProcess
from tests.integration.live_kit import Admin, LiveWorld, module_gateway, sip_secret, wait_for
from tests.integration.phones import Phones, start_phone
from tests.integration.sipp_kit import SipMessage, SippProcess
from tests.integration.transfer_kit import notify_progress, start_caller, transferor
from tests.integration.trunk import Trunk

PROVIDER_HOST = "127.0.0.3"
PROVIDER_LOGIN = "gw-account-77"
PROVIDER_SECRET = "provider-secret-Zq81"  # noqa: S105 - the test greps the logs and answers for it
PBX_SECRET = "pbx-secret-Hv42"  # noqa: S105
_RUNS = itertools.count(1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from module_gateway(tmp_path_factory, "live-trunks")


@pytest.fixture(scope="module")
def admin(gateway: GatewayProcess) -> Admin:
    return Admin(gateway)


@pytest.fixture
def world(gateway: GatewayProcess, admin: Admin, phones: Phones, trunk: Trunk) -> LiveWorld:
    return LiveWorld(gateway, admin, phones, trunk)


def start_provider(directory: Path) -> SippProcess:
    """The provider's edge on 127.0.0.3: challenges each INVITE, checks the answer, then answers."""
    return SippProcess(directory, f"provider-{next(_RUNS)}", [
        "-sf", str(SCENARIOS / "provider_uas_challenge.xml"),
        "-key", "trunk_user", PROVIDER_LOGIN, "-key", "trunk_secret", PROVIDER_SECRET, "-m", "1",
    ], lifetime_s=30, host=PROVIDER_HOST)


def call_with_auth(gateway: GatewayProcess, directory: Path, user: str, secret: str, dialled: str,
                   host: str = "127.0.0.5") -> SippProcess:
    """A caller that answers the gateway's 407: an employee's phone, or a PBX with its trunk's login."""
    return SippProcess(directory, f"caller-{next(_RUNS)}", [
        "-sf", str(SCENARIOS / "uac_call_auth.xml"), "-s", dialled, "-key", "from_user", user,
        "-au", user, "-ap", secret, "-m", "1", f"127.0.0.1:{gateway.sip_port}",
        # SIPp's digest names remote_ip:port unless told; the gateway wants the Request-URI (RFC 2617 §3.2.2.5).
        "-auth_uri", f"{dialled}@127.0.0.1:{gateway.sip_port}",
    ], lifetime_s=30, host=host)


def final_status(messages: list[SipMessage], method: str = "INVITE") -> int | None:
    finals = [m.status for m in messages if not m.sent and m.cseq_method == method and (m.status or 0) >= 200]
    return finals[-1] if finals else None


def answered_and_hung_up(provider: SippProcess) -> bool:
    """The provider accepted the credentials: it answered 200, got the ACK, then the BYE."""
    messages = provider.messages()
    sent = [m.status for m in messages if m.sent and m.cseq_method == "INVITE" and m.status]
    return sent[-1:] == [200] and any(not m.sent and m.method == "BYE" for m in messages)


def provider_trunk(admin: Admin, port: int, **fields: object) -> dict[str, object]:
    body = {"name": f"provider {next(_RUNS)}", "kind": "provider", "host": PROVIDER_HOST, "port": port,
            "transport": "udp", "trust": "source", "username": PROVIDER_LOGIN, "secret": PROVIDER_SECRET,
            "caller_id_format": "e164_plus", "deny_patterns": [r"^(112|15|17|18)$", r"^\+3389"], **fields}
    return admin.post("/trunks", body)  # type: ignore[no-any-return]


def test_r4_an_employees_call_leaves_through_the_provider_with_the_number_as_caller_id(
    world: LiveWorld, admin: Admin, tmp_path: Path
) -> None:
    provider = start_provider(tmp_path)
    trunk = provider_trunk(admin, provider.port)
    number = world.number(None, create_for="all", unknown_caller_action="auto_lead")
    admin.patch(f"/numbers/{number.id}", {"trunk_id": trunk["id"]})
    caller = world.employee("Carla")
    admin.patch(f"/employees/{caller.id}", {"outbound_number_id": number.id})
    dialled = "06 55 00 77 01".replace(" ", "")

    phone = call_with_auth(world.gateway, tmp_path, caller.extension, sip_secret(caller.extension), dialled)
    assert phone.wait(25) == 0, phone.errors() + world.gateway.log()[-3000:]
    assert provider.wait(10) == 0, provider.errors()
    assert final_status(phone.messages()) == 200
    assert answered_and_hung_up(provider)

    invites = [m for m in provider.messages() if not m.sent and m.method == "INVITE"]
    assert len(invites) == 2, "the provider's challenge is answered once"
    assert "Authorization" not in invites[0].text and "Authorization" in invites[1].text
    assert f"sip:{number.e164}@" in (invites[1].header("From") or "")
    assert f"sip:{number.e164}@" in (invites[1].header("P-Asserted-Identity") or "")
    assert invites[1].text.split(" ", 2)[1].startswith("sip:+33655007701@")

    call_id = next(m.call_id for m in phone.messages() if m.sent and m.method == "INVITE")
    entry = world.logged(call_id)
    assert entry["direction"] == "outbound"
    assert entry["party_e164"] == "+33655007701"
    assert "R4" in entry["routing"]["rule_ids"]
    leads = world.items_with_phone("lead", "+33655007701")
    assert [lead["responsible_id"] for lead in leads] == [caller.id], "T10: the placing employee is responsible"


def test_r4_a_blocked_prefix_is_refused_with_403_and_never_reaches_the_provider(
    world: LiveWorld, admin: Admin, tmp_path: Path
) -> None:
    provider = start_provider(tmp_path)
    trunk = provider_trunk(admin, provider.port)
    number = world.number(None)
    admin.patch(f"/numbers/{number.id}", {"trunk_id": trunk["id"]})
    caller = world.employee("Dario")
    admin.patch(f"/employees/{caller.id}", {"outbound_number_id": number.id})

    phone = call_with_auth(world.gateway, tmp_path, caller.extension, sip_secret(caller.extension), "112")
    phone.wait(25)
    assert final_status(phone.messages()) == 403, phone.errors()
    provider.stop()
    assert not [m for m in provider.messages() if m.method == "INVITE"]


def test_t1_a_customers_pbx_registers_with_its_trunk_credentials_then_calls_a_number(
    world: LiveWorld, admin: Admin, tmp_path: Path
) -> None:
    login = f"pbx-{next(_RUNS)}"
    pbx_trunk = admin.post("/trunks", {"name": f"acme pbx {login}", "kind": "pbx", "host": "pbx.acme.example",
                                       "trust": "digest", "username": login, "secret": PBX_SECRET})
    alice = world.staff("Alice", phone="answer")
    number = world.number(world.queue([alice]), kind="sip_pbx", trunk_id=pbx_trunk["id"])
    pbx = start_phone(world.gateway, login, PBX_SECRET, "answer",
                      registered_within_s=5, directory=tmp_path)
    world.phones.started.append(pbx)

    caller = call_with_auth(world.gateway, tmp_path, login, PBX_SECRET, number.dial, host="127.0.0.6")
    assert caller.wait(25) == 0, caller.errors() + world.gateway.log()[-3000:]
    assert alice.phone is not None
    alice.phone.wait_calls(answered=1)
    call_id = next(m.call_id for m in caller.messages() if m.sent and m.method == "INVITE")
    entry = world.logged(call_id)
    assert entry["direction"] == "inbound" and entry["number"] == number.e164
    assert f"the call came in through trunk 'acme pbx {login}' (pbx)" in entry["routing"]["notes"]


def test_t1_an_unknown_source_calling_a_number_is_challenged_and_never_reaches_it(
    world: LiveWorld, tmp_path: Path
) -> None:
    alice = world.staff("Alice", phone="answer")
    number = world.number(world.queue([alice]))
    stranger = call_with_auth(world.gateway, tmp_path, "pbx-guess", "wrong-secret", number.dial, host="127.0.0.7")
    stranger.wait(25)
    statuses = [m.status for m in stranger.messages() if not m.sent and m.status]
    assert statuses and all(status == 407 for status in statuses if status >= 200), statuses
    assert alice.phone is not None and not alice.phone.calls()


def test_t1_trunk_secrets_never_appear_in_answers_or_logs(world: LiveWorld, admin: Admin) -> None:
    trunk = provider_trunk(admin, 5999)
    for body in (admin.get(f"/trunks/{trunk['id']}"), admin.get("/trunks"), trunk):
        assert PROVIDER_SECRET not in str(body)
    wait_for("the gateway logged something", lambda: world.gateway.log())
    for secret in (PROVIDER_SECRET, PBX_SECRET):
        assert secret not in world.gateway.log()


def test_r5_a_blind_transfer_to_an_outside_number_leaves_through_the_transferors_trunk(
    world: LiveWorld, admin: Admin, tmp_path: Path
) -> None:
    provider = start_provider(tmp_path)
    trunk = provider_trunk(admin, provider.port)
    alice = world.employee("Alice")
    number = world.number(world.queue([alice]), trunk_id=trunk["id"])
    admin.patch(f"/employees/{alice.id}", {"outbound_number_id": number.id})
    alice_phone = transferor(world, alice, target="0655007702")
    caller = start_caller(world, number, "0655000931", talk_ms=2500)
    assert caller.wait(40) == 0, caller.explain() + alice_phone.explain()
    assert provider.wait(10) == 0, provider.errors()
    assert notify_progress(alice_phone)[-1] == ("SIP/2.0 200 OK", "terminated")
    assert answered_and_hung_up(provider), provider.errors()
    invites = [m for m in provider.messages() if not m.sent and m.method == "INVITE"]
    assert len(invites) == 2 and "Authorization" in invites[1].text
    assert invites[1].text.split(" ", 2)[1].startswith("sip:+33655007702@")
    assert f"sip:{number.e164}@" in (invites[1].header("From") or "")
    [reinvite] = caller.reinvites()
    assert "o=provider" in reinvite.text


def test_t1_a_provider_trunk_created_over_the_api_is_registered_and_its_state_shown(
    world: LiveWorld, admin: Admin, tmp_path: Path
) -> None:
    registrar = SippProcess(tmp_path, f"registrar-{next(_RUNS)}", [
        "-sf", str(SCENARIOS / "provider_registrar.xml"), "-key", "username", PROVIDER_LOGIN,
        "-key", "password", PROVIDER_SECRET, "-key", "realm", "provider.example", "-key", "expires", "120",
    ], lifetime_s=30, host="127.0.0.4")
    trunk = admin.post("/trunks", {"name": f"registered {next(_RUNS)}", "kind": "provider", "host": "127.0.0.4",
                                   "port": registrar.port, "trust": "registration", "username": PROVIDER_LOGIN,
                                   "secret": PROVIDER_SECRET, "register_expires": 120})

    def registered() -> dict[str, object] | None:
        state = admin.get(f"/trunks/{trunk['id']}")["registration"]
        return state if state and state["state"] == "registered" else None

    state = wait_for("the trunk registered", registered, 10, lambda: registrar.errors() + world.gateway.log()[-2000:])
    assert state["last_status"] == 200 and state["registered_until"]
    with urllib.request.urlopen(f"{admin.base}/metrics", timeout=10) as answer:
        metrics_text = answer.read().decode()
    assert f'gateway_trunk_registered{{trunk="{trunk["name"]}"}} 1.0' in metrics_text
    assert PROVIDER_SECRET not in str(admin.get("/trunks")) + world.gateway.log()
    admin.expect(204, "DELETE", f"/trunks/{trunk['id']}")
    registrar.stop()
