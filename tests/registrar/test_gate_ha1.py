"""Employees' phones authenticate against a stored digest HA1 (issue 10: the secret is never stored)."""

from __future__ import annotations

import pytest

from gateway.registrar.gate import DigestGate
from gateway.sip.auth import build_authorization, compute_ha1
from gateway.sip.message import Request

REALM = "example.test"
STORED = {
    ("1001", "MD5"): compute_ha1("MD5", "1001", REALM, "s3cret"),
    ("1001", "SHA-256"): compute_ha1("SHA-256", "1001", REALM, "s3cret"),
}


def _gate(passwords: dict[str, str] | None = None, algorithm: str = "MD5") -> DigestGate:
    return DigestGate(
        b"k" * 32, REALM, 300.0, passwords or {}, algorithms=(algorithm,),
        ha1=lambda user, algo: STORED.get((user, algo)),
    )


def _register(gate: DigestGate, username: str, password: str, nc: int = 1) -> Request:
    request = Request("REGISTER", f"sip:{REALM}")
    challenge = gate.challenges(0.0)[0]
    request.headers.append(("Authorization", build_authorization(
        challenge, method="REGISTER", uri=f"sip:{REALM}", username=username, password=password,
        cnonce="c0ffee", nc=nc)))
    return request


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_stored_ha1_authenticates_the_right_secret(algorithm: str) -> None:
    gate = _gate(algorithm=algorithm)
    verdict = gate.verify(_register(gate, "1001", "s3cret"), "Authorization", 1.0)
    assert verdict.ok and verdict.username == "1001"


def test_stored_ha1_refuses_a_wrong_secret_and_an_unknown_user_alike() -> None:
    gate = _gate()
    assert not gate.verify(_register(gate, "1001", "guess"), "Authorization", 1.0).ok
    assert not gate.verify(_register(gate, "1002", "s3cret"), "Authorization", 1.0).ok


def test_a_configured_password_wins_over_a_stored_ha1() -> None:
    gate = _gate({"1001": "from-config"})
    assert gate.verify(_register(gate, "1001", "from-config"), "Authorization", 1.0).ok
    assert not gate.verify(_register(gate, "1001", "s3cret"), "Authorization", 1.0).ok
