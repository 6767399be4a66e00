"""The end-to-end kit against today's gateway: real SIPp phones that REGISTER with digest and real
SIPp trunk calls, through the static `registered` route (^1xxx$) and `[[sip.users]]`.

Each test uses extensions of its own: a stopped phone's registration stays in the gateway until it
expires, so an extension is never reused by a later test of this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import GatewayProcess, start_gateway, stop_gateway
from tests.integration.phones import Phones, sip_users_config, start_phone
from tests.integration.trunk import ANONYMOUS, Trunk, TrunkCall

EXTENSIONS = [str(number) for number in range(1101, 1114)]


def password(extension: str) -> str:
    return f"kit-secret-{extension}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway of this module's own, with a digest user per extension the tests register."""
    users = sip_users_config({extension: password(extension) for extension in EXTENSIONS})
    running = start_gateway(tmp_path_factory.mktemp("phones-kit"), extra_sip=users)
    try:
        yield running
    finally:
        stop_gateway(running)


def test_phone_registers_with_digest_and_answers_a_trunk_call(gateway: GatewayProcess, phones: Phones,
                                                                 trunk: Trunk) -> None:
    phone = phones.start(gateway, "1101", password("1101"))
    run = trunk.call(gateway, TrunkCall(dialled="1101", caller="0612345678"), talk_ms=200)
    assert run.successes == 1 and run.statuses == [200], run.explain()
    assert run.calls[0].hung_up_by == "caller" and run.calls[0].bye_statuses == (200,)
    phone.wait_calls(answered=1, ended=1)
    [seen] = phone.calls()
    assert seen.caller_user == "0612345678" and seen.hung_up_by == "gateway", phone.explain()
    assert run.call_ids[0] and run.call_ids[0] != seen.call_id  # the trunk's leg and the phone's leg


def test_a_wrong_password_is_refused_at_start(gateway: GatewayProcess) -> None:
    with pytest.raises(AssertionError, match="last REGISTER answer: 401"):
        start_phone(gateway, "1111", "not-the-password", registered_within_s=5)


def test_the_phone_hangs_up_after_its_talk_time(gateway: GatewayProcess, phones: Phones, trunk: Trunk) -> None:
    phone = phones.start(gateway, "1102", password("1102"), talk_ms=300)
    started = time.monotonic()
    run = trunk.call(gateway, TrunkCall(dialled="1102"), talk_ms=10_000)
    assert run.successes == 1 and run.calls[0].hung_up_by == "callee", run.explain()
    assert time.monotonic() - started < 5  # the phone's BYE ended it, not the trunk's 10 s
    phone.wait_calls(ended=1)
    assert phone.calls()[0].hung_up_by == "phone"


def test_a_ringing_phone_and_the_caller_cancelling_give_487(gateway: GatewayProcess, phones: Phones,
                                                             trunk: Trunk) -> None:
    phone = phones.start(gateway, "1103", password("1103"), mode="ring")
    ringing = trunk.start(gateway, TrunkCall(dialled="1103"), cancel_after_ms=1000)
    phone.wait_calls(offered=1)  # the test acts while the call rings (e.g. stops the database)
    assert phone.calls()[0].final_status is None and ringing.result().statuses == [None]
    run = ringing.wait()
    assert run.successes == 1 and run.statuses == [487], run.explain()
    assert run.calls[0].cancelled and 180 in run.calls[0].provisional
    phone.wait_calls(cancelled=1, ended=1)
    assert phone.calls()[0].cancelled and phone.calls_answered() == 0


def test_an_answering_phone_cancelled_before_it_answers(gateway: GatewayProcess, phones: Phones,
                                                         trunk: Trunk) -> None:
    phone = phones.start(gateway, "1104", password("1104"), answer_after_ms=3000)
    run = trunk.call(gateway, TrunkCall(dialled="1104"), cancel_after_ms=200)
    assert run.statuses == [487], run.explain()
    phone.wait_calls(cancelled=1)
    assert phone.calls_answered() == 0, phone.explain()


def test_a_busy_phone_gives_486_and_a_call_expecting_200_is_counted_failed(
        gateway: GatewayProcess, phones: Phones, trunk: Trunk) -> None:
    phone = phones.start(gateway, "1105", password("1105"), mode="busy")
    busy = trunk.call(gateway, TrunkCall(dialled="1105"), expect=486)
    assert busy.successes == 1 and busy.statuses == [486], busy.explain()
    expecting_answer = trunk.call(gateway, TrunkCall(dialled="1105"))
    assert expecting_answer.failures == 1 and expecting_answer.statuses == [486]
    phone.wait_calls(busy=2)


def test_an_unregistered_extension_gives_480_and_an_unknown_number_404(
        gateway: GatewayProcess, phones: Phones, trunk: Trunk) -> None:
    silent = phones.start(gateway, "1106", password("1106"), mode="unregistered")
    run = trunk.call(gateway, TrunkCall(dialled="1106"), expect=480)
    assert run.successes == 1 and run.statuses == [480], run.explain()
    unknown = trunk.call(gateway, TrunkCall(dialled="999"), expect=404)
    assert unknown.statuses == [404], unknown.explain()
    assert silent.calls_offered() == 0


def test_two_phones_take_sequential_calls_each_from_its_caller(gateway: GatewayProcess, phones: Phones,
                                                               trunk: Trunk) -> None:
    first = phones.start(gateway, "1107", password("1107"))
    second = phones.start(gateway, "1108", password("1108"))
    calls = [TrunkCall(dialled=dialled, caller=f"06000000{index:02d}")
             for index, dialled in enumerate(["1107", "1108", "1107", "1108"])]
    run = trunk.call(gateway, *calls, talk_ms=100)
    assert run.successes == 4 and len(set(run.call_ids)) == 4, run.explain()
    assert [result.call for result in run.calls] == calls  # results in the order placed, each its row
    first.wait_calls(answered=2, ended=2)
    second.wait_calls(answered=2, ended=2)
    assert [c.caller_user for c in first.calls()] == ["0600000000", "0600000002"]
    assert [c.caller_user for c in second.calls()] == ["0600000001", "0600000003"]


def test_one_phone_takes_two_simultaneous_calls(gateway: GatewayProcess, phones: Phones, trunk: Trunk) -> None:
    phone = phones.start(gateway, "1109", password("1109"), answer_after_ms=300)
    run = trunk.call(gateway, TrunkCall(dialled="1109"), TrunkCall(dialled="1109"), concurrent=2, talk_ms=300)
    assert run.successes == 2, run.explain()
    phone.wait_calls(answered=2, ended=2)


def test_a_tcp_phone_registers_and_answers(gateway: GatewayProcess, phones: Phones, trunk: Trunk) -> None:
    phone = phones.start(gateway, "1110", password("1110"), transport="tcp")
    run = trunk.call(gateway, TrunkCall(dialled="1110"), transport="tcp", talk_ms=100)
    assert run.successes == 1, run.explain() + phone.explain()
    phone.wait_calls(answered=1, ended=1)


def test_a_retransmitted_invite_and_a_duplicated_bye_make_one_call(gateway: GatewayProcess, phones: Phones,
                                                                   trunk: Trunk) -> None:
    phone = phones.start(gateway, "1112", password("1112"), answer_after_ms=400)
    run = trunk.call(gateway, TrunkCall(dialled="1112"), retransmit_invite_after_ms=0, duplicate_bye=True)
    assert run.successes == 1, run.explain()
    assert run.calls[0].invites_sent == 2 and run.calls[0].bye_statuses == (200, 200)
    phone.wait_calls(answered=1, ended=1)
    assert phone.calls_offered() == 1  # the gateway absorbed the second INVITE


def test_anonymous_and_asserted_callers_are_sent_as_asked(gateway: GatewayProcess, phones: Phones,
                                                          trunk: Trunk) -> None:
    phone = phones.start(gateway, "1113", password("1113"))
    calls = [TrunkCall(dialled="1113", caller=None, asserted="+33612345678", privacy="id"),
             TrunkCall(dialled="1113", caller="+33698765432", display="Jane Roe")]
    run = trunk.call(gateway, *calls, talk_ms=50)
    assert run.successes == 2, run.explain()
    invites = [m for m in run.messages if m.sent and m.method == "INVITE"]
    assert ANONYMOUS in (invites[0].header("From") or "")
    assert invites[0].header("P-Asserted-Identity") == "<sip:+33612345678@127.0.0.1>"
    assert invites[0].header("Privacy") == "id"
    assert (invites[1].header("From") or "").startswith('"Jane Roe" <sip:+33698765432@')
    assert invites[1].header("P-Asserted-Identity") is None and invites[1].first_line.startswith("INVITE sip:1113@")
    phone.wait_calls(answered=2)
    assert [c.caller_user for c in phone.calls()] == ["anonymous", "+33698765432"]
