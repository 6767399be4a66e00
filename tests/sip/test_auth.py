"""Digest authentication (RFC 2617, RFC 7616; RFC 3261 §22) with stateless nonces."""

from __future__ import annotations

import re

import pytest

from gateway.sip.auth import (
    AuthResult,
    DigestChallenger,
    build_authorization,
    compute_ha1,
    digest_response,
    parse_auth_params,
)

USERS = {"alice": "wonderland", "bob": "builder"}
NOW = 1_700_000_000.0


def _challenger(max_age: float = 300.0) -> DigestChallenger:
    return DigestChallenger(b"cluster-secret", "voice.example.com", max_age=max_age)


def _answer(challenge: str, *, password: str = "wonderland", user: str = "alice", method: str = "REGISTER") -> str:
    return build_authorization(challenge, method=method, uri="sip:voice.example.com", username=user,
                               password=password, cnonce="0a4f113b", nc=1)


def test_rfc2617_known_answer_md5() -> None:
    # RFC 2617 §3.5
    ha1 = compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    response = digest_response("MD5", ha1, nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET",
                               uri="/dir/index.html", qop="auth", nc="00000001", cnonce="0a4f113b")
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
])
def test_rfc7616_known_answer(algorithm: str, expected: str) -> None:
    # RFC 7616 §3.9.1
    challenge = ('Digest realm="http-auth@example.org", qop="auth, auth-int", '
                 f'algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    value = build_authorization(challenge, method="GET", uri="/dir/index.html", username="Mufasa",
                                password="Circle of Life", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    _, params = parse_auth_params(value)
    assert params["response"] == expected
    assert params["qop"] == "auth" and params["nc"] == "00000001"
    assert params["opaque"] == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_round_trip(algorithm: str) -> None:
    challenger = _challenger()
    challenge = challenger.challenge(NOW, algorithm=algorithm)
    assert f"algorithm={algorithm}" in challenge and 'qop="auth"' in challenge
    result = challenger.verify(_answer(challenge), "REGISTER", NOW + 5, USERS.get)
    assert result == AuthResult(True, False, "alice")


def test_lookup_may_give_ha1() -> None:
    challenger = _challenger()
    challenge = challenger.challenge(NOW, algorithm="SHA-256")
    store = {"alice": compute_ha1("SHA-256", "alice", "voice.example.com", "wonderland")}
    result = challenger.verify(_answer(challenge), "REGISTER", NOW, store.get, lookup_gives_ha1=True)
    assert result.ok


def test_wrong_password_is_rejected() -> None:
    challenger = _challenger()
    result = challenger.verify(_answer(challenger.challenge(NOW), password="nope"), "REGISTER", NOW, USERS.get)
    assert result == AuthResult(False, False, None)


def test_unknown_user_looks_exactly_like_a_wrong_password() -> None:
    challenger = _challenger()
    challenge = challenger.challenge(NOW)
    looked_up: list[str] = []

    def lookup(name: str) -> str | None:
        looked_up.append(name)
        return USERS.get(name)

    wrong = challenger.verify(_answer(challenge, password="nope"), "REGISTER", NOW, lookup)
    unknown = challenger.verify(_answer(challenge, user="mallory"), "REGISTER", NOW, lookup)
    assert wrong == unknown == AuthResult(False, False, None)
    assert looked_up == ["alice", "mallory"]  # both went as far as the hash comparison


def test_wrong_method_is_rejected() -> None:
    challenger = _challenger()
    value = _answer(challenger.challenge(NOW), method="INVITE")
    assert not challenger.verify(value, "REGISTER", NOW, USERS.get).ok


def test_digest_for_another_request_uri_is_rejected() -> None:
    """RFC 2617 §3.2.2.5: the digest's uri must be the Request-URI being authorised."""
    challenger = _challenger()
    value = _answer(challenger.challenge(NOW))
    assert challenger.verify(value, "REGISTER", NOW, USERS.get, request_uri="sip:voice.example.com").ok
    assert not challenger.verify(value, "REGISTER", NOW, USERS.get, request_uri="sip:other.example.com").ok


def test_stale_nonce_after_max_age() -> None:
    challenger = _challenger(max_age=60)
    value = _answer(challenger.challenge(NOW))
    assert challenger.verify(value, "REGISTER", NOW + 59, USERS.get).ok
    assert challenger.verify(value, "REGISTER", NOW + 61, USERS.get) == AuthResult(False, True, "alice")
    # a stale nonce with a wrong password is just wrong, not stale
    bad = _answer(challenger.challenge(NOW), password="nope")
    assert challenger.verify(bad, "REGISTER", NOW + 61, USERS.get) == AuthResult(False, False, None)
    assert "stale=true" in challenger.challenge(NOW + 61, stale=True)


def test_tampered_nonce_is_rejected() -> None:
    challenger = _challenger()
    challenge = challenger.challenge(NOW)
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)  # type: ignore[union-attr]
    stamp, salt, node, mac = nonce.split(".")
    # moving the timestamp forward (to dodge staleness) breaks the HMAC
    forged = f"{int(stamp, 16) + 10_000_000:x}.{salt}.{node}.{mac}"
    value = _answer(challenge.replace(nonce, forged))
    assert challenger.verify(value, "REGISTER", NOW + 10_000, USERS.get) == AuthResult(False, False, None)


def test_item8_nonce_relabelled_with_another_node_is_rejected() -> None:
    """The node id is under the HMAC: a nonce cannot be moved to the node it is replayed to."""
    node_a = DigestChallenger(b"cluster-secret", "voice.example.com", node="a")
    challenge = node_a.challenge(NOW)
    nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)  # type: ignore[union-attr]
    stamp, salt, _node, mac = nonce.split(".")
    relabelled = _answer(challenge.replace(nonce, f"{stamp}.{salt}.b.{mac}"))
    node_b = DigestChallenger(b"cluster-secret", "voice.example.com", node="b")
    assert node_b.verify(relabelled, "REGISTER", NOW, USERS.get) == AuthResult(False, False, None)


def test_nonce_from_another_secret_or_realm_is_rejected() -> None:
    other_secret = DigestChallenger(b"another-secret", "voice.example.com")
    other_realm = DigestChallenger(b"cluster-secret", "other.example.com")
    challenger = _challenger()
    assert not challenger.verify(_answer(other_secret.challenge(NOW)), "REGISTER", NOW, USERS.get).ok
    assert not challenger.verify(_answer(other_realm.challenge(NOW)), "REGISTER", NOW, USERS.get).ok


def test_item8_another_node_answers_right_credentials_on_its_peers_nonce_stale() -> None:
    """Stale, not refused: an honest phone that moved to another node retries with that node's nonce."""
    node_a, node_b = _challenger(), _challenger()
    result = node_b.verify(_answer(node_a.challenge(NOW)), "REGISTER", NOW + 1, USERS.get)
    assert (result.ok, result.stale, result.foreign) == (False, True, True)
    assert node_b.verify(_answer(node_b.challenge(NOW + 1, stale=True)), "REGISTER", NOW + 1, USERS.get).ok


def test_item8_a_node_id_is_a_label_without_dots() -> None:
    with pytest.raises(ValueError, match="node id"):
        DigestChallenger(b"cluster-secret", "voice.example.com", node="a.b")


@pytest.mark.parametrize("value", [
    "", "Basic YWxpY2U6d29uZGVybGFuZA==", "Digest", 'Digest username="alice"', "Digest ,,,,",
    'Digest username="alice", realm="voice.example.com", nonce="x.y.z", uri="sip:a", response="00"',
    'Digest username="alice", realm="voice.example.com", nonce="1.2.3", uri="sip:a", response="00", '
    'algorithm=MD5-sess',
])
def test_garbage_credentials_are_rejected_quietly(value: str) -> None:
    assert _challenger().verify(value, "REGISTER", NOW, USERS.get) == AuthResult(False, False, None)


def test_auth_int_only_challenge_is_refused_by_the_client() -> None:
    from gateway.sip.errors import RemoteProtocolError

    with pytest.raises(RemoteProtocolError):
        build_authorization('Digest realm="r", nonce="n", qop="auth-int"', method="REGISTER", uri="sip:r",
                            username="u", password="p", cnonce="c")


def test_challenge_without_qop_gets_rfc2069_answer() -> None:
    value = build_authorization('Digest realm="r", nonce="n"', method="REGISTER", uri="sip:r",
                                username="u", password="p", cnonce="c")
    _, params = parse_auth_params(value)
    assert "qop" not in params and "cnonce" not in params
    assert params["response"] == digest_response("MD5", compute_ha1("MD5", "u", "r", "p"), nonce="n",
                                                 method="REGISTER", uri="sip:r", qop=None, nc="", cnonce="")
