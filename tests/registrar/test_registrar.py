"""Registrar (RFC 3261 §10.3): digest auth, bindings, expiry, un-register, no user enumeration."""

from __future__ import annotations

import itertools
import re

import pytest

from gateway.registrar import BindingStore, Registrar
from gateway.registrar.gate import DigestGate, Verdict
from gateway.sip.auth import build_authorization
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message

USERS = {"1001": "pw-1001", "1002": "pw-1002"}
SOURCE = ("udp", "10.0.0.5", 5062)
_serial = itertools.count(1)


@pytest.fixture
def registrar() -> Registrar:
    gate = DigestGate(b"k" * 32, "example.test", 300.0, USERS)
    return Registrar(BindingStore(), gate, min_expires=60, max_expires=3600, default_expires=1800)


def register(
    user: str,
    contacts: list[str],
    *,
    expires: str | None = None,
    call_id: str = "reg-1",
    cseq: int = 1,
    authorization: str | None = None,
) -> Request:
    headers = [
        ("Via", f"SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{next(_serial)}"),
        ("From", f"<sip:{user}@example.test>;tag=f1"),
        ("To", f"<sip:{user}@example.test>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
    ]
    headers += [("Contact", contact) for contact in contacts]
    if expires is not None:
        headers.append(("Expires", expires))
    if authorization is not None:
        headers.append(("Authorization", authorization))
    return Request("REGISTER", "sip:example.test", headers)


def authed(registrar: Registrar, user: str, password: str, contacts: list[str], now: float = 100.0,
           **kwargs: object) -> Response:
    """Send once, answer the 401 like a phone does, return the final answer."""
    first = registrar.handle(register(user, contacts, **kwargs), SOURCE, now)  # type: ignore[arg-type]
    assert first.status == 401
    challenge = first.get("WWW-Authenticate") or ""
    credentials = build_authorization(challenge, method="REGISTER", uri="sip:example.test",
                                      username=user, password=password, cnonce="c0ffee")
    cseq = int(kwargs.pop("cseq", 1)) + 1  # type: ignore[call-overload]
    return registrar.handle(register(user, contacts, cseq=cseq, authorization=credentials, **kwargs),  # type: ignore[arg-type]
                            SOURCE, now)


def contacts_of(response: Response) -> list[str]:
    return response.get_all("Contact")


def test_register_without_credentials_is_challenged(registrar: Registrar) -> None:
    response = registrar.handle(register("1001", ["<sip:1001@10.0.0.5:5062>"]), SOURCE, 100.0)
    assert response.status == 401
    assert (response.get("WWW-Authenticate") or "").startswith("Digest ")
    assert 'realm="example.test"' in (response.get("WWW-Authenticate") or "")
    assert registrar.store.contacts("1001", 100.0) == []


def test_same_401_for_unknown_and_known_users(registrar: Registrar) -> None:
    known = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"]), SOURCE, 100.0)
    unknown = registrar.handle(register("9999", ["<sip:9999@10.0.0.5>"]), SOURCE, 100.0)
    assert known.status == unknown.status == 401
    assert known.reason == unknown.reason
    assert [name for name, _ in known.headers] == [name for name, _ in unknown.headers]
    assert _without_nonce(known) == _without_nonce(unknown)
    # And with credentials: a wrong password and an unknown user fail alike.
    wrong = authed(registrar, "1001", "guess", ["<sip:1001@10.0.0.5>"])
    nobody = authed(registrar, "9999", "guess", ["<sip:9999@10.0.0.5>"])
    assert wrong.status == nobody.status == 401
    assert _without_nonce(wrong) == _without_nonce(nobody)


def _without_nonce(response: Response) -> str:
    """The challenge with its nonce blanked (each nonce is fresh; all else must be identical)."""
    return re.sub(r'nonce="[^"]*"', 'nonce=""', response.get("WWW-Authenticate") or "")


def test_good_credentials_bind_and_the_200_lists_the_bindings(registrar: Registrar) -> None:
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5:5062>"], expires="300")
    assert response.status == 200
    assert contacts_of(response) == ["<sip:1001@10.0.0.5:5062>;expires=300"]
    assert registrar.store.contacts("1001", 100.0) == ["sip:1001@10.0.0.5:5062"]


def test_several_contacts_per_aor_most_recent_first(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5:5062>"], now=100.0, call_id="desk")
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.9:5060>;expires=600"], now=110.0,
                      call_id="mobile")
    assert len(contacts_of(response)) == 2
    assert registrar.store.contacts("1001", 120.0) == ["sip:1001@10.0.0.9:5060", "sip:1001@10.0.0.5:5062"]


def test_contact_expires_param_wins_over_header_and_max_is_enforced(registrar: Registrar) -> None:
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>;expires=99999"], expires="120")
    assert contacts_of(response) == ["<sip:1001@10.0.0.5>;expires=3600"]


def test_bindings_expire(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"], expires="120", now=100.0)
    assert registrar.store.contacts("1001", 219.0) == ["sip:1001@10.0.0.5"]
    assert registrar.store.contacts("1001", 221.0) == []
    assert len(registrar.store) == 0


def test_too_brief_interval_is_423_with_min_expires(registrar: Registrar) -> None:
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"], expires="10")
    assert response.status == 423
    assert response.get("Min-Expires") == "60"
    assert registrar.store.contacts("1001", 100.0) == []


def test_unregister_one_contact_with_expires_zero(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>", "<sip:1001@10.0.0.6>"], call_id="c", cseq=1)
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>;expires=0"], call_id="c", cseq=5)
    assert response.status == 200
    assert contacts_of(response) == ["<sip:1001@10.0.0.6>;expires=1800"]


def test_unregister_all_with_star(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"], call_id="c", cseq=1)
    response = authed(registrar, "1001", "pw-1001", ["*"], expires="0", call_id="c", cseq=5)
    assert response.status == 200 and contacts_of(response) == []
    assert registrar.store.contacts("1001", 100.0) == []


def test_star_without_expires_zero_is_400(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"], call_id="c", cseq=1)
    response = authed(registrar, "1001", "pw-1001", ["*"], expires="60", call_id="c", cseq=5)
    assert response.status == 400
    assert registrar.store.contacts("1001", 100.0) == ["sip:1001@10.0.0.5"]


def test_register_without_contact_lists_current_bindings(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"], expires="300", call_id="c", cseq=1)
    response = authed(registrar, "1001", "pw-1001", [], call_id="q", cseq=1)
    assert response.status == 200 and contacts_of(response) == ["<sip:1001@10.0.0.5>;expires=300"]


def test_out_of_order_cseq_on_same_call_id_changes_nothing(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"], expires="300", call_id="c", cseq=10)
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>;expires=0"], call_id="c", cseq=3)
    assert response.status == 500
    assert registrar.store.contacts("1001", 100.0) == ["sip:1001@10.0.0.5"]


def test_user_cannot_register_someone_else(registrar: Registrar) -> None:
    first = registrar.handle(register("1002", ["<sip:1002@10.0.0.5>"]), SOURCE, 100.0)
    credentials = build_authorization(first.get("WWW-Authenticate") or "", method="REGISTER",
                                      uri="sip:example.test", username="1001", password="pw-1001", cnonce="x")
    response = registrar.handle(register("1002", ["<sip:1002@10.0.0.5>"], cseq=2, authorization=credentials),
                                SOURCE, 100.0)
    assert response.status == 403
    assert registrar.store.contacts("1002", 100.0) == []


def test_credentials_for_another_request_uri_do_not_register(registrar: Registrar) -> None:
    """RFC 2617 §3.2.2.5: a digest computed for another Request-URI is refused like a wrong password."""
    first = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"]), SOURCE, 100.0)
    credentials = build_authorization(first.get("WWW-Authenticate") or "", method="REGISTER",
                                      uri="sip:elsewhere.test", username="1001", password="pw-1001", cnonce="x")
    response = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"], cseq=2, authorization=credentials),
                                SOURCE, 100.0)
    assert response.status == 401
    assert registrar.store.contacts("1001", 100.0) == []


def test_stale_nonce_is_rechallenged_with_stale_true(registrar: Registrar) -> None:
    first = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"]), SOURCE, 100.0)
    credentials = build_authorization(first.get("WWW-Authenticate") or "", method="REGISTER",
                                      uri="sip:example.test", username="1001", password="pw-1001", cnonce="x")
    late = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"], cseq=2, authorization=credentials),
                            SOURCE, 100.0 + 301)
    assert late.status == 401
    assert "stale=true" in (late.get("WWW-Authenticate") or "").lower()


def test_malformed_expires_is_400(registrar: Registrar) -> None:
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"], expires="soon")
    assert response.status == 400


def test_password_never_appears_in_answers(registrar: Registrar) -> None:
    response = authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.5>"])
    assert b"pw-1001" not in response.to_bytes()


def _stale(response: Response, header: str = "WWW-Authenticate") -> bool:
    return "stale=true" in (response.get(header) or "").lower()


def test_replayed_register_cannot_bind_the_attackers_contact(registrar: Registrar) -> None:
    """Contact is outside the digest, so a sniffed Authorization must not serve twice (RFC 7616 §3.4)."""
    first = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"]), SOURCE, 100.0)
    captured = build_authorization(first.get("WWW-Authenticate") or "", method="REGISTER",
                                   uri="sip:example.test", username="1001", password="pw-1001", cnonce="x")
    honest = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"], cseq=2, authorization=captured),
                              SOURCE, 100.0)
    assert honest.status == 200
    attacker = ("udp", "203.0.113.9", 5060)
    replay = registrar.handle(
        register("1001", ["<sip:1001@203.0.113.9>"], call_id="evil", cseq=1, authorization=captured),
        attacker, 150.0,
    )
    assert replay.status == 401 and _stale(replay)
    assert registrar.store.contacts("1001", 150.0) == ["sip:1001@10.0.0.5"]


def test_refresh_on_the_same_nonce_needs_a_higher_nc(registrar: Registrar) -> None:
    """A phone refreshing with the nonce it already has: nc=2 is fine, nc=1 again is stale and it recovers."""
    first = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"], call_id="c"), SOURCE, 100.0)
    challenge = first.get("WWW-Authenticate") or ""

    def credentials(nc: int, challenge: str = challenge) -> str:
        return build_authorization(challenge, method="REGISTER", uri="sip:example.test", username="1001",
                                   password="pw-1001", cnonce=f"c{nc}", nc=nc)

    def send(cseq: int, authorization: str, now: float) -> Response:
        return registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"], expires="120", call_id="c",
                                         cseq=cseq, authorization=authorization), SOURCE, now)

    assert send(2, credentials(1), 100.0).status == 200
    assert send(3, credentials(2), 160.0).status == 200
    again = send(4, credentials(2), 220.0)
    assert again.status == 401 and _stale(again)
    recovered = send(5, credentials(1, again.get("WWW-Authenticate") or ""), 220.0)
    assert recovered.status == 200
    assert registrar.store.contacts("1001", 330.0) == ["sip:1001@10.0.0.5"]  # refreshed at 220 for 120 s


def test_replayed_invite_proxy_authorization_is_stale() -> None:
    """The INVITE gate (untrusted sources, RFC 3261 §22.3) refuses a replayed Proxy-Authorization too."""
    gate = DigestGate(b"k" * 32, "example.test", 300.0, USERS)
    challenge = gate.challenges(100.0)[0]
    credentials = build_authorization(challenge, method="INVITE", uri="sip:2000@example.test",
                                      username="1001", password="pw-1001", cnonce="x")

    def invite(call_id: str) -> Request:
        return Request("INVITE", "sip:2000@example.test", [
            ("Via", f"SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{next(_serial)}"),
            ("From", "<sip:1001@example.test>;tag=f1"), ("To", "<sip:2000@example.test>"),
            ("Call-ID", call_id), ("CSeq", "1 INVITE"), ("Contact", "<sip:1001@10.0.0.5>"),
            ("Proxy-Authorization", credentials),
        ])

    assert gate.verify(invite("a"), "Proxy-Authorization", 100.0) == Verdict(True, False, "1001")
    assert gate.verify(invite("b"), "Proxy-Authorization", 101.0) == Verdict(False, True, None)


def test_nonce_cap_fails_closed_at_the_gate() -> None:
    gate = DigestGate(b"k" * 32, "example.test", 300.0, USERS, max_nonces=1)
    registrar = Registrar(BindingStore(), gate)
    challenges = [gate.challenges(100.0 + i)[0] for i in range(2)]
    captured = [build_authorization(c, method="REGISTER", uri="sip:example.test", username="1001",
                                    password="pw-1001", cnonce="x") for c in challenges]
    for cseq, value in enumerate(captured, start=1):
        ok = registrar.handle(register("1001", ["<sip:1001@10.0.0.5>"], cseq=cseq, authorization=value),
                              SOURCE, 110.0)
        assert ok.status == 200
    evil = register("1001", ["<sip:1001@203.0.113.9>"], call_id="evil", authorization=captured[0])
    forgotten = registrar.handle(evil, SOURCE, 120.0)
    assert forgotten.status == 401 and _stale(forgotten)
    assert registrar.store.contacts("1001", 120.0) == ["sip:1001@10.0.0.5"]


def test_sha256_and_md5_offered_in_preference_order_and_both_answerable() -> None:
    """RFC 8760 §2.4: one challenge per algorithm, most preferred first; each one can be answered."""
    gate = DigestGate(b"k" * 32, "example.test", 300.0, USERS, algorithms=("SHA-256", "MD5"))
    registrar = Registrar(BindingStore(), gate)
    first = registrar.handle(register("1001", ["<sip:1001@10.0.0.5:5062>"]), SOURCE, 100.0)  # type: ignore[arg-type]
    offered = first.get_all("WWW-Authenticate")
    assert [re.search(r"algorithm=([\w-]+)", value).group(1) for value in offered] == ["SHA-256", "MD5"]  # type: ignore[union-attr]
    for cseq, challenge in enumerate(offered, start=2):
        credentials = build_authorization(challenge, method="REGISTER", uri="sip:example.test",
                                          username="1001", password="pw-1001", cnonce="c0ffee")
        answer = registrar.handle(register("1001", ["<sip:1001@10.0.0.5:5062>"], cseq=cseq,  # type: ignore[arg-type]
                                           authorization=credentials), SOURCE, 100.0)
        assert answer.status == 200, challenge


def test_unknown_digest_algorithm_is_refused_at_start() -> None:
    with pytest.raises(ValueError):
        DigestGate(b"k" * 32, "example.test", 300.0, USERS, algorithms=("SHA-512",))


def _over_the_wire(request: Request, placeholder: bytes, raw: bytes) -> Request:
    """`request` as the transport would hand it over after `placeholder` was replaced by `raw` bytes
    on the wire (the parser keeps undecodable bytes as surrogates)."""
    parsed = parse_message(request.to_bytes().replace(placeholder, raw))
    assert isinstance(parsed, Request)
    return parsed


def _authed_raw(registrar: Registrar, contacts: list[str], raw: bytes, **kwargs: object) -> Response:
    first = registrar.handle(register("1001", contacts, **kwargs), SOURCE, 100.0)  # type: ignore[arg-type]
    credentials = build_authorization(first.get("WWW-Authenticate") or "", method="REGISTER",
                                      uri="sip:example.test", username="1001", password="pw-1001", cnonce="x")
    request = register("1001", contacts, cseq=2, authorization=credentials, **kwargs)  # type: ignore[arg-type]
    return registrar.handle(_over_the_wire(request, b"RAW", raw), SOURCE, 100.0)


@pytest.mark.parametrize("raw", [b"\xff", "é".encode()])
def test_a_contact_uri_that_is_not_ascii_is_400_and_binds_nothing(registrar: Registrar, raw: bytes) -> None:
    """RFC 3261 §25.1: a URI escapes anything outside ASCII; stored raw it could never be written to the
    database (one such binding used to stop every later registration from being saved)."""
    response = _authed_raw(registrar, ["<sip:1001@10.0.0.5;x=RAW>", "<sip:1001@10.0.0.6>"], raw)
    assert response.status == 400
    assert "ASCII" in response.reason
    assert registrar.store.contacts("1001", 100.0) == []


def test_a_call_id_that_is_not_ascii_is_400_and_binds_nothing(registrar: Registrar) -> None:
    """RFC 3261 §25.1: Call-ID is `word ["@" word]`, ASCII only."""
    response = _authed_raw(registrar, ["<sip:1001@10.0.0.5>"], b"\xff", call_id="reg-RAW")
    assert response.status == 400
    assert "Call-ID" in response.reason
    assert registrar.store.contacts("1001", 100.0) == []


def test_an_aor_is_capped_at_max_contacts_and_the_next_new_contact_is_403() -> None:
    """Refused, not replacing the oldest (as Kamailio's max_contacts and Oracle's default do): a phone
    that re-registers with a new Contact on every reconnect must not evict a desk phone that refreshes
    hourly. Refreshes and removals of bound Contacts still work at the cap."""
    gate = DigestGate(b"k" * 32, "example.test", 300.0, USERS)
    capped = Registrar(BindingStore(), gate, max_contacts_per_aor=3)
    for n in range(3):
        assert authed(capped, "1001", "pw-1001", [f"<sip:1001@10.0.0.{n}>"], call_id=f"c{n}").status == 200
    refused = authed(capped, "1001", "pw-1001", ["<sip:1001@10.0.0.9>"], call_id="c9")
    assert refused.status == 403
    assert "at most 3" in refused.reason
    assert sorted(capped.store.contacts("1001", 100.0)) == [f"sip:1001@10.0.0.{n}" for n in range(3)]
    # At the cap: a refresh is fine, and so is a swap that removes one Contact while adding another.
    assert authed(capped, "1001", "pw-1001", ["<sip:1001@10.0.0.0>"], call_id="c0", cseq=5).status == 200
    swap = authed(capped, "1001", "pw-1001", ["<sip:1001@10.0.0.1>;expires=0", "<sip:1001@10.0.0.9>"],
                  call_id="c1", cseq=5)
    assert swap.status == 200
    assert sorted(capped.store.contacts("1001", 100.0)) == [
        "sip:1001@10.0.0.0", "sip:1001@10.0.0.2", "sip:1001@10.0.0.9"
    ]
    # Another AOR has its own allowance; one REGISTER carrying too many Contacts is refused whole.
    too_many = authed(capped, "1002", "pw-1002", [f"<sip:1002@10.0.1.{n}>" for n in range(4)])
    assert too_many.status == 403 and capped.store.contacts("1002", 100.0) == []


def test_the_contact_cap_defaults_to_ten(registrar: Registrar) -> None:
    contacts = [f"<sip:1001@10.0.0.{n}>" for n in range(10)]
    assert authed(registrar, "1001", "pw-1001", contacts).status == 200
    assert authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.99>"], call_id="x").status == 403


def test_an_aor_above_a_lowered_cap_may_still_refresh_but_not_grow(registrar: Registrar) -> None:
    authed(registrar, "1001", "pw-1001", [f"<sip:1001@10.0.0.{n}>" for n in range(4)], call_id="c")
    registrar.max_contacts_per_aor = 2
    assert authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.3>"], call_id="c", cseq=5).status == 200
    assert authed(registrar, "1001", "pw-1001", ["<sip:1001@10.0.0.7>"], call_id="c", cseq=7).status == 403
    assert len(registrar.store.contacts("1001", 100.0)) == 4
