"""SPEC T1 (rented numbers reach us through a provider's trunk): the gateway's registration at the
provider, as a pure state machine on a fake clock, against a registrar that checks digest for real."""

from __future__ import annotations

import pytest

from gateway.sip.auth import parse_auth_params
from gateway.sip.message import Request
from gateway.trunks.registration import (
    REFRESH_MARGIN,
    OutboundRegistration,
    RegistrationState,
    choose_challenge,
    refresh_delay,
)
from tests.trunks.provider import LOCAL, REGISTRAR, SECRET, Provider, answer, provider_trunk


def machine(**changes: object) -> OutboundRegistration:
    return OutboundRegistration(provider_trunk(**changes), LOCAL, call_id="reg-1@gw", tag="gwtag",
                                backoff_base=2.0, backoff_cap=10.0)


def registered(reg: OutboundRegistration, provider: Provider, now: float = 0.0, expires: int = 600) -> Request:
    """Take `reg` through challenge and 2xx; the authenticated REGISTER it sent."""
    first = reg.start(now)
    authenticated = reg.on_response(provider.challenge(first, now), REGISTRAR, now)
    assert authenticated is not None and provider.verify(authenticated, now)
    assert reg.on_response(provider.accept(authenticated, expires), REGISTRAR, now) is None
    return authenticated


def test_t1_register_names_the_trunk_account_and_our_address() -> None:
    reg = machine()
    request = reg.start(0.0)
    assert request.method == "REGISTER" and request.uri == "sip:sip.acme.test:5060"
    assert request.get("To") == "<sip:gw-acme@sip.acme.test>"
    assert request.get("From") == "<sip:gw-acme@sip.acme.test>;tag=gwtag"
    assert request.get("Contact") == "<sip:gw-acme@192.0.2.10:5080>"
    assert request.get("Expires") == "600"
    assert request.call_id == "reg-1@gw" and request.cseq == (1, "REGISTER")
    assert request.get("Authorization") is None
    assert reg.status.state is RegistrationState.REGISTERING and reg.deadline is None


def test_t1_tcp_trunk_registers_a_tcp_contact() -> None:
    request = machine(transport="tcp").start(0.0)
    assert request.uri == "sip:sip.acme.test:5060;transport=tcp"
    assert request.get("Contact") == "<sip:gw-acme@192.0.2.10:5080;transport=tcp>"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_t1_digest_challenge_is_answered_with_the_trunk_secret(algorithm: str) -> None:
    provider, reg = Provider(), machine()
    first = reg.start(0.0)
    second = reg.on_response(provider.challenge(first, 0.0, algorithm), REGISTRAR, 0.0)
    assert second is not None
    assert second.call_id == first.call_id and second.cseq == (2, "REGISTER")
    assert parse_auth_params(second.get("Authorization") or "")[1]["algorithm"] == algorithm
    assert provider.verify(second, 0.0)
    assert not Provider(password="another").verify(second, 0.0)


def test_t1_sha256_is_chosen_when_the_provider_offers_both() -> None:
    provider, reg = Provider(), machine()
    first = reg.start(0.0)
    second = reg.on_response(provider.challenge(first, 0.0, "MD5", "SHA-256"), REGISTRAR, 0.0)
    assert second is not None
    assert parse_auth_params(second.get("Authorization") or "")[1]["algorithm"] == "SHA-256"
    assert provider.verify(second, 0.0)


def test_t1_a_challenge_in_an_unsupported_algorithm_only_fails() -> None:
    reg = machine()
    first = reg.start(0.0)
    odd = answer(first, 401, ("WWW-Authenticate", 'Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"'))
    assert reg.on_response(odd, REGISTRAR, 0.0) is None
    assert reg.state is RegistrationState.FAILING and reg.last_status == 401
    assert "supported algorithm" in (reg.last_reason or "")
    assert choose_challenge(['Basic realm="r"', "not even a challenge ,,,"]) is None


def test_t1_407_is_answered_with_proxy_authorization() -> None:
    provider, reg = Provider(), machine()
    first = reg.start(0.0)
    second = reg.on_response(provider.challenge(first, 0.0, status=407), REGISTRAR, 0.0)
    assert second is not None and second.get("Authorization") is None
    assert provider.verify(second, 0.0, "Proxy-Authorization")


def test_t1_a_second_challenge_for_the_answered_nonce_means_refused_credentials() -> None:
    provider, reg = Provider(password="what the provider expects"), machine()
    first = reg.start(0.0)
    challenge = provider.challenge(first, 0.0)
    second = reg.on_response(challenge, REGISTRAR, 0.0)
    assert second is not None and not provider.verify(second, 0.0)
    again = answer(second, 401, ("WWW-Authenticate", challenge.get("WWW-Authenticate") or ""))
    assert reg.on_response(again, REGISTRAR, 0.0) is None
    assert reg.state is RegistrationState.FAILING and reg.last_status == 401
    assert "credentials refused" in (reg.last_reason or "")
    assert reg.next_attempt == 2.0


def test_t1_a_stale_challenge_is_answered_again_with_its_new_nonce() -> None:
    provider, reg = Provider(), machine()
    first = reg.start(0.0)
    second = reg.on_response(provider.challenge(first, 0.0), REGISTRAR, 0.0)
    assert second is not None
    third = reg.on_response(provider.challenge(second, 1.0, stale=True), REGISTRAR, 1.0)
    assert third is not None and third.cseq[0] == 3 and provider.verify(third, 1.0)


def test_t1_endless_new_nonces_are_cut_off() -> None:
    provider, reg = Provider(password="wrong"), machine()
    request: Request | None = reg.start(0.0)
    answered = 0
    while request is not None:
        request = reg.on_response(provider.challenge(request, 0.0), REGISTRAR, 0.0)
        answered += request is not None
    assert answered == 3 and reg.state is RegistrationState.FAILING


def test_t1_granted_expiry_is_read_from_our_contact_and_refreshed_before_it_ends() -> None:
    provider, reg = Provider(), machine()
    first = reg.start(10.0)
    second = reg.on_response(provider.challenge(first, 10.0), REGISTRAR, 10.0)
    assert second is not None
    ok = answer(second, 200, ("Contact", "<sip:someone-else@203.0.113.9>;expires=9999"),
                ("Contact", "<sip:gw-acme@192.0.2.10:5080>;expires=300"), ("Expires", "7777"))
    assert reg.on_response(ok, REGISTRAR, 10.0) is None
    status = reg.status
    assert status.state is RegistrationState.REGISTERED and status.last_status == 200
    assert status.registered_until == 310.0
    assert status.next_attempt == 10.0 + 300 - REFRESH_MARGIN == reg.deadline
    assert reg.registrar == REGISTRAR


def test_t1_expiry_from_the_expires_header_or_else_as_asked() -> None:
    provider = Provider()
    for extra, granted in (((("Expires", "120"),)), 120), ((), 600):
        reg = machine()
        first = reg.start(0.0)
        second = reg.on_response(provider.challenge(first, 0.0), REGISTRAR, 0.0)
        assert second is not None
        reg.on_response(answer(second, 200, *extra), REGISTRAR, 0.0)
        assert reg.registered_until == granted


def test_t1_refresh_rule_half_for_short_margin_for_long() -> None:
    assert refresh_delay(4) == 2
    assert refresh_delay(100) == 50
    assert refresh_delay(3600) == 3600 - REFRESH_MARGIN


def test_t1_refresh_is_a_new_challenged_register_in_the_same_call() -> None:
    provider, reg = Provider(), machine()
    sent = registered(reg, provider, 0.0, expires=4)
    assert reg.deadline == 2.0
    assert reg.on_timer(1.9) is None
    refresh = reg.on_timer(2.0)
    assert refresh is not None and refresh.call_id == sent.call_id and refresh.cseq[0] == 3
    assert refresh.get("Authorization") is None
    assert reg.state is RegistrationState.REGISTERED and reg.deadline is None  # awaiting its answer
    authenticated = reg.on_response(provider.challenge(refresh, 2.0), REGISTRAR, 2.0)
    assert authenticated is not None and provider.verify(authenticated, 2.0)
    reg.on_response(provider.accept(authenticated, 4), REGISTRAR, 2.0)
    assert reg.registered_until == 6.0 and reg.deadline == 4.0


def test_t1_interval_too_brief_is_retried_with_min_expires() -> None:
    reg = machine(register_expires=30)
    first = reg.start(0.0)
    retry = reg.on_response(answer(first, 423, ("Min-Expires", "120")), REGISTRAR, 0.0)
    assert retry is not None and retry.get("Expires") == "120" and retry.cseq[0] == 2
    assert reg.on_response(answer(retry, 423, ("Min-Expires", "120")), REGISTRAR, 0.0) is None
    assert reg.state is RegistrationState.FAILING and reg.last_status == 423


@pytest.mark.parametrize("status", [403, 404, 500, 503, 302, 489])
def test_t1_refusal_fails_and_retries_with_doubling_backoff_up_to_the_cap(status: int) -> None:
    reg = machine()
    request = reg.start(0.0)
    now, delays = 0.0, []
    for _ in range(5):
        assert reg.on_response(answer(request, status), REGISTRAR, now) is None
        assert reg.state is RegistrationState.FAILING and reg.last_status == status
        assert reg.next_attempt is not None
        delays.append(reg.next_attempt - now)
        now = reg.next_attempt
        retry = reg.on_timer(now)
        assert retry is not None and retry.cseq[0] == request.cseq[0] + 1
        request = retry
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert reg.status.failures == 5 and reg.status.failures_in_a_row == 5


def test_t1_recovery_resets_the_backoff_but_not_the_failure_count() -> None:
    provider, reg = Provider(), machine()
    first = reg.start(0.0)
    reg.on_response(answer(first, 403, reason="Forbidden"), REGISTRAR, 0.0)
    assert (reg.last_status, reg.last_reason) == (403, "Forbidden")
    retry = reg.on_timer(2.0)
    assert retry is not None
    authenticated = reg.on_response(provider.challenge(retry, 2.0), REGISTRAR, 2.0)
    assert authenticated is not None
    reg.on_response(provider.accept(authenticated), REGISTRAR, 2.0)
    assert reg.state is RegistrationState.REGISTERED
    assert reg.status.failures == 1 and reg.status.failures_in_a_row == 0


def test_t1_retry_after_is_honoured_up_to_the_cap() -> None:
    reg = machine()
    first = reg.start(0.0)
    reg.on_response(answer(first, 503, ("Retry-After", "7")), REGISTRAR, 0.0)
    assert reg.next_attempt == 7.0
    second = reg.on_timer(7.0)
    assert second is not None
    reg.on_response(answer(second, 503, ("Retry-After", "3600 (maintenance)")), REGISTRAR, 7.0)
    assert reg.next_attempt == 17.0


@pytest.mark.parametrize(("status", "words"), [(408, "Timeout"), (503, "cannot be reached")])
def test_t1_no_answer_fails_with_its_status(status: int, words: str) -> None:
    provider, reg = Provider(), machine()
    registered(reg, provider, 0.0, expires=4)
    refresh = reg.on_timer(2.0)
    assert refresh is not None
    assert reg.on_no_answer(refresh.cseq[0] - 1, status, 5.0) is None and reg.state is RegistrationState.REGISTERED
    reg.on_no_answer(refresh.cseq[0], status, 34.0)
    status_now = reg.status
    assert status_now.state is RegistrationState.FAILING and status_now.last_status == status
    assert words in (status_now.last_reason or "") and status_now.next_attempt == 36.0
    assert status_now.registered_until == 4.0  # what the provider last granted, now past


def test_t1_a_2xx_that_keeps_no_binding_is_a_failure() -> None:
    reg = machine()
    first = reg.start(0.0)
    reg.on_response(answer(first, 200, ("Contact", "<sip:gw-acme@192.0.2.10:5080>;expires=0")), REGISTRAR, 0.0)
    assert reg.state is RegistrationState.FAILING and reg.last_status == 200


def test_t1_provisional_and_stale_answers_change_nothing() -> None:
    reg = machine()
    first = reg.start(0.0)
    assert reg.on_response(answer(first, 100), REGISTRAR, 0.0) is None
    reg.on_response(answer(first, 403), REGISTRAR, 0.0)
    assert reg.on_response(answer(first, 200), REGISTRAR, 0.0) is None  # its transaction already ended
    assert reg.state is RegistrationState.FAILING


def test_t1_stop_unregisters_a_live_binding_answering_its_challenge() -> None:
    provider, reg = Provider(), machine()
    registered(reg, provider, 0.0)
    bye = reg.stop(10.0)
    assert bye is not None and bye.get("Expires") == "0" and bye.cseq[0] == 3
    assert reg.status.state is RegistrationState.STOPPED and reg.deadline is None and not reg.finished
    authenticated = reg.on_response(provider.challenge(bye, 10.0), REGISTRAR, 10.0)
    assert authenticated is not None and provider.verify(authenticated, 10.0)
    assert authenticated.get("Expires") == "0"
    assert reg.on_response(answer(authenticated, 200), REGISTRAR, 10.0) is None
    assert reg.finished and reg.registered_until is None
    assert reg.stop(11.0) is None and reg.on_timer(1000.0) is None


def test_t1_stop_during_a_register_unregisters_only_after_its_answer() -> None:
    reg = machine()
    first = reg.start(0.0)
    assert reg.stop(0.1) is None and not reg.finished  # RFC 3261 §10.2: one REGISTER at a time
    bye = reg.on_response(answer(first, 200), REGISTRAR, 0.2)
    assert bye is not None and bye.get("Expires") == "0" and bye.cseq[0] == 2
    reg.on_no_answer(bye.cseq[0], 408, 32.0)
    assert reg.finished and reg.state is RegistrationState.STOPPED


def test_t1_stop_during_a_refused_first_register_sends_nothing_more() -> None:
    reg = machine()
    first = reg.start(0.0)
    reg.stop(0.1)
    assert reg.on_response(answer(first, 403), REGISTRAR, 0.2) is None and reg.finished
    timed_out = machine()
    request = timed_out.start(0.0)
    timed_out.stop(0.1)
    assert timed_out.on_no_answer(request.cseq[0], 408, 32.0) is None and timed_out.finished


def test_t1_stop_for_a_replacing_registration_drops_the_pending_answer() -> None:
    reg = machine()
    first = reg.start(0.0)
    assert reg.stop(0.1, unregister=False) is None and reg.finished
    assert reg.on_response(answer(first, 200), REGISTRAR, 0.2) is None


def test_t1_stop_without_a_binding_sends_nothing() -> None:
    reg = machine()
    first = reg.start(0.0)
    reg.on_response(answer(first, 403), REGISTRAR, 0.0)
    assert reg.stop(1.0) is None and reg.finished
    provider, expired = Provider(), machine()
    registered(expired, provider, 0.0, expires=4)
    assert expired.stop(5.0) is None  # its binding ended at 4 s


def test_t1_a_trunk_without_username_cannot_register() -> None:
    with pytest.raises(ValueError, match="username"):
        machine(username=None)
    with pytest.raises(ValueError, match="back-off"):
        OutboundRegistration(provider_trunk(), LOCAL, call_id="c", tag="t", backoff_base=5, backoff_cap=1)


def test_t1_the_secret_is_in_no_request_header_in_clear() -> None:
    provider, reg = Provider(), machine()
    sent = registered(reg, provider)
    assert SECRET not in sent.to_bytes().decode()
