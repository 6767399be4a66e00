"""Digest replay protection: nonce-count per nonce (RFC 7616 §3.4, RFC 2617 §3.2.2), bounded memory."""

from __future__ import annotations

import re

import pytest

from gateway.sip.auth import (
    AuthResult,
    DigestChallenger,
    ReplayGuard,
    build_authorization,
    compute_ha1,
    digest_response,
    parse_auth_params,
)

USERS = {"alice": "wonderland", "bob": "builder"}
REALM = "voice.example.com"
URI = "sip:voice.example.com"
NOW = 1_700_000_000.0
STALE_REPLAY = AuthResult(False, True, "alice", replay=True)


def _challenger(max_age: float = 300.0, max_nonces: int = 100_000) -> DigestChallenger:
    return DigestChallenger(b"cluster-secret", REALM, max_age=max_age, max_nonces=max_nonces)


def _answer(challenge: str, *, nc: int = 1, password: str = "wonderland", user: str = "alice",
            method: str = "REGISTER", cnonce: str = "0a4f113b") -> str:
    return build_authorization(challenge, method=method, uri=URI, username=user, password=password,
                               cnonce=cnonce, nc=nc)


def _no_qop(challenge: str) -> str:
    """The same challenge as an RFC 2069 server would send it (no qop offered)."""
    return challenge.replace(', qop="auth"', "")


def _verify(challenger: DigestChallenger, value: str, now: float = NOW) -> AuthResult:
    return challenger.verify(value, "REGISTER", now, USERS.get, request_uri=URI)


def test_replay_with_the_same_nc_is_stale() -> None:
    challenger = _challenger()
    captured = _answer(challenger.challenge(NOW))
    assert _verify(challenger, captured, NOW + 1) == AuthResult(True, False, "alice")
    assert _verify(challenger, captured, NOW + 2) == STALE_REPLAY


def test_increasing_nc_on_one_nonce_is_accepted_and_a_lower_one_refused() -> None:
    challenger = _challenger()
    challenge = challenger.challenge(NOW)
    assert _verify(challenger, _answer(challenge, nc=1), NOW + 1).ok
    assert _verify(challenger, _answer(challenge, nc=2, cnonce="b"), NOW + 60).ok
    assert _verify(challenger, _answer(challenge, nc=7, cnonce="c"), NOW + 120).ok  # gaps are allowed
    assert _verify(challenger, _answer(challenge, nc=5, cnonce="d"), NOW + 121) == STALE_REPLAY
    assert _verify(challenger, _answer(challenge, nc=7, cnonce="e"), NOW + 122) == STALE_REPLAY
    assert _verify(challenger, _answer(challenge, nc=8, cnonce="f"), NOW + 123).ok


def test_nonces_are_tracked_separately() -> None:
    challenger = _challenger()
    first, second = challenger.challenge(NOW), challenger.challenge(NOW)
    assert _verify(challenger, _answer(first)).ok
    assert _verify(challenger, _answer(second)).ok
    assert _verify(challenger, _answer(first)) == STALE_REPLAY


def test_nonce_without_qop_serves_once() -> None:
    """RFC 2069 style: no nonce-count to order requests by, so a second use is a replay."""
    challenger = _challenger()
    value = _answer(_no_qop(challenger.challenge(NOW)))
    assert "nc=" not in value
    assert _verify(challenger, value) == AuthResult(True, False, "alice")
    assert _verify(challenger, value, NOW + 1) == STALE_REPLAY


def test_nonce_used_without_qop_cannot_be_reused_with_qop() -> None:
    challenger = _challenger()
    challenge = challenger.challenge(NOW)
    assert _verify(challenger, _answer(_no_qop(challenge))).ok
    assert _verify(challenger, _answer(challenge, nc=0xFFFFFFFF)) == STALE_REPLAY


def test_wrong_password_does_not_spend_the_nonce() -> None:
    """Only verified credentials are recorded: an attacker who sees a nonce cannot burn it."""
    challenger = _challenger()
    challenge = challenger.challenge(NOW)
    assert not _verify(challenger, _answer(challenge, nc=0xFFFFFFFF, password="guess")).ok
    assert not _verify(challenger, _answer(challenge, nc=0xFFFFFFFF, user="mallory")).ok
    assert len(challenger.replays) == 0
    assert _verify(challenger, _answer(challenge, nc=1)).ok


def test_replay_with_a_wrong_password_is_plain_rejection_not_stale() -> None:
    """A stale hint goes only to whoever knows the password: no extension enumeration by replay."""
    challenger = _challenger()
    challenge = challenger.challenge(NOW)
    assert _verify(challenger, _answer(challenge)).ok
    assert _verify(challenger, _answer(challenge, password="guess")) == AuthResult(False, False, None)
    assert _verify(challenger, _answer(challenge, user="mallory")) == AuthResult(False, False, None)


@pytest.mark.parametrize("nc", ["00000000", "0", "000000001", "1g", "", "-1", "0x1"])
def test_malformed_or_zero_nc_is_rejected_quietly(nc: str) -> None:
    challenger = _challenger()
    value = re.sub(r"nc=[0-9a-f]+", f"nc={nc}", _answer(challenger.challenge(NOW)))
    assert parse_auth_params(value)[1]["nc"] == nc
    assert _verify(challenger, value) == AuthResult(False, False, None)
    assert len(challenger.replays) == 0


def test_short_nc_counts_by_value() -> None:
    """nc=2 and nc=00000002 name the same count: the second is a replay even though its digest differs."""
    challenger = _challenger()
    challenge = challenger.challenge(NOW)
    assert _verify(challenger, _answer(challenge, nc=2)).ok
    short = build_authorization(challenge, method="REGISTER", uri=URI, username="alice",
                                password="wonderland", cnonce="x", nc=2)
    short = short.replace("nc=00000002", "nc=2")
    # the digest covers nc as written, so rebuild it the way a client writing "2" would
    params = parse_auth_params(short)[1]
    response = digest_response("MD5", compute_ha1("MD5", "alice", REALM, "wonderland"), nonce=params["nonce"],
                               method="REGISTER", uri=URI, qop="auth", nc="2", cnonce="x")
    short = re.sub(r'response="[0-9a-f]+"', f'response="{response}"', short)
    assert _verify(challenger, short) == STALE_REPLAY


def test_expired_nonce_is_stale_by_age_not_replay_and_memory_is_freed() -> None:
    challenger = _challenger(max_age=60)
    values = [_answer(challenger.challenge(NOW + i)) for i in range(5)]
    for value in values:
        assert _verify(challenger, value, NOW + 10).ok
    assert len(challenger.replays) == 5
    assert _verify(challenger, values[0], NOW + 61) == AuthResult(False, True, "alice")  # age, not replay
    fresh = _answer(challenger.challenge(NOW + 100))
    assert _verify(challenger, fresh, NOW + 100).ok
    assert len(challenger.replays) == 1  # the five old ones went on this check
    assert _verify(challenger, fresh, NOW + 101) == STALE_REPLAY


def test_cap_forgets_the_oldest_and_a_forgotten_nonce_counts_as_used() -> None:
    challenger = _challenger(max_nonces=3)
    challenges = [challenger.challenge(NOW + i) for i in range(5)]
    unused_older = challenger.challenge(NOW - 1)
    unused_newer = challenger.challenge(NOW + 0.5)
    for challenge in challenges[:4]:
        assert _verify(challenger, _answer(challenge), NOW + 10).ok
    assert len(challenger.replays) == 3
    # the first nonce was dropped for room: even a higher nc is refused (fail closed)
    assert _verify(challenger, _answer(challenges[0], nc=2), NOW + 11) == STALE_REPLAY
    # as is an unused nonce older than the forgotten one: it cannot be told from a forgotten one
    assert _verify(challenger, _answer(unused_older), NOW + 11) == STALE_REPLAY
    # one issued after the forgotten one cannot have been forgotten, so it is fresh
    assert _verify(challenger, _answer(unused_newer), NOW + 11).ok
    # remembered nonces keep counting, newer unused ones are fresh
    assert _verify(challenger, _answer(challenges[3], nc=2), NOW + 12).ok
    assert _verify(challenger, _answer(challenges[4]), NOW + 12).ok
    assert len(challenger.replays) == 3
    assert _verify(challenger, _answer(challenges[4]), NOW + 13) == STALE_REPLAY


def test_honest_client_recovers_from_a_stale_replay_answer() -> None:
    """A phone that resends nc=1 on a used nonce gets stale and re-answers the fresh challenge."""
    challenger = _challenger()
    first = challenger.challenge(NOW)
    assert _verify(challenger, _answer(first)).ok
    assert _verify(challenger, _answer(first), NOW + 60).stale
    rechallenge = challenger.challenge(NOW + 60, stale=True)
    assert "stale=true" in rechallenge
    assert _verify(challenger, _answer(rechallenge), NOW + 60).ok


def test_item8_replay_to_a_second_node_sharing_the_secret_is_refused() -> None:
    """Each node guards only what it saw, so each accepts only the nonces it issued itself."""
    node_a, node_b = _challenger(), _challenger()
    value = _answer(node_a.challenge(NOW))
    assert _verify(node_a, value).ok
    assert _verify(node_a, value) == STALE_REPLAY
    replayed = _verify(node_b, value)
    assert not replayed.ok and replayed.stale and replayed.foreign


def test_guard_alone_counts_and_expires_with_a_hand_moved_clock() -> None:
    guard = ReplayGuard(max_age=300, capacity=10)
    assert guard.admit("n1", NOW, 1, NOW)
    assert not guard.admit("n1", NOW, 1, NOW + 1)
    assert guard.admit("n1", NOW, 2, NOW + 2)
    assert guard.admit("n2", NOW + 100, None, NOW + 100)
    assert not guard.admit("n2", NOW + 100, None, NOW + 101)
    assert len(guard) == 2
    assert guard.admit("n3", NOW + 350, 1, NOW + 350)
    assert len(guard) == 2  # n1 expired at NOW + 300
    # had the clock gone back, n1 (forgotten) is still refused
    assert not guard.admit("n1", NOW, 3, NOW + 10)
    assert guard.admit("n4", NOW + 500, 1, NOW + 500)
    assert len(guard) == 2  # n2 expired at NOW + 400; n3 lives until NOW + 650
    assert not guard.admit("n3", NOW + 350, 1, NOW + 600)
    assert guard.admit("n5", NOW + 700, 1, NOW + 700)
    assert len(guard) == 2  # n3 gone, n4 (until NOW + 800) and n5 left


def test_guard_needs_room() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(300, capacity=0)
