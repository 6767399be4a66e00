"""Employees' SIP credentials: the secret is turned into digest HA1s at once and never kept.

The SIP user is the employee's extension; HA1 = H(extension:realm:secret) for MD5 and SHA-256 (RFC 7616),
what the registrar needs to check a digest without the password. The realm is the gateway's SIP realm
(`app.state.sip_realm` when the gateway set it, else the configuration's default).
"""

from __future__ import annotations

from dataclasses import fields

from fastapi import Request

from gateway.config import SipConfig
from gateway.sip.auth import compute_ha1
from gateway.storage.models import Employee

DEFAULT_REALM: str = str(next(f.default for f in fields(SipConfig) if f.name == "realm"))


def sip_realm(request: Request) -> str:
    """The realm the gateway challenges phones with."""
    return getattr(request.app.state, "sip_realm", None) or DEFAULT_REALM


def set_sip_secret(employee: Employee, user: str, realm: str, secret: str) -> None:
    """Store the HA1s of `secret` for `user` in `realm` (the secret itself is dropped here)."""
    employee.sip_realm = realm
    employee.sip_ha1_md5 = compute_ha1("MD5", user, realm, secret)
    employee.sip_ha1_sha256 = compute_ha1("SHA-256", user, realm, secret)


def clear_sip_secret(employee: Employee) -> None:
    """Forget the employee's SIP credentials: their phones can no longer register."""
    employee.sip_realm = employee.sip_ha1_md5 = employee.sip_ha1_sha256 = None


def has_sip_secret(employee: Employee) -> bool:
    """Whether the employee's phones can register."""
    return bool(employee.sip_ha1_md5 and employee.sip_ha1_sha256)
