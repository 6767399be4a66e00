"""A provider's registrar in memory for the registration tests: real digest checks, scripted answers."""

from __future__ import annotations

from gateway.sip.auth import DigestChallenger
from gateway.sip.message import Request, Response, make_response
from gateway.trunks.model import TrunkKind, TrunkSpec, TrunkTrust

SECRET = "tr-unk-s3cret-value"
REALM = "provider.test"
REGISTRAR: tuple[str, str, int] = ("udp", "198.51.100.7", 5060)
LOCAL = ("192.0.2.10", 5080)


def provider_trunk(**changes: object) -> TrunkSpec:
    fields: dict[str, object] = {
        "id": 7, "name": "acme", "kind": TrunkKind.PROVIDER, "host": "sip.acme.test", "port": 5060,
        "trust": TrunkTrust.REGISTRATION, "username": "gw-acme", "secret": SECRET, "register_expires": 600,
    }
    fields.update(changes)
    return TrunkSpec(**fields)  # type: ignore[arg-type]


def answer(request: Request, status: int, *headers: tuple[str, str], reason: str | None = None) -> Response:
    response = make_response(request, status, reason, to_tag="prov1")
    response.headers.extend(headers)
    return response


class Provider:
    """Challenges with `DigestChallenger` and checks the credentials like a real registrar."""

    def __init__(self, password: str = SECRET) -> None:
        self.digest = DigestChallenger(b"provider-nonce-key-0123456789abcdef", REALM)
        self.password = password

    def challenge(self, request: Request, now: float, *algorithms: str, status: int = 401,
                  stale: bool = False) -> Response:
        header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        values = [self.digest.challenge(now, algorithm=algorithm, stale=stale) for algorithm in algorithms or ("MD5",)]
        return answer(request, status, *((header, value) for value in values))

    def verify(self, request: Request, now: float, header: str = "Authorization") -> bool:
        value = request.get(header)
        if value is None:
            return False
        result = self.digest.verify(value, "REGISTER", now, lambda user: self.password if user == "gw-acme" else None,
                                    request_uri=request.uri)
        return result.ok

    def accept(self, request: Request, expires: int | None = None) -> Response:
        contact = request.get("Contact") or ""
        granted = expires if expires is not None else int(request.get("Expires") or "0")
        return answer(request, 200, ("Contact", f"{contact};expires={granted}"))
