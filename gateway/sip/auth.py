"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616): MD5 and SHA-256, qop=auth.

Nonces are stateless: ``<time in ms, hex>.<salt>.<HMAC>`` keyed by a secret shared by every node, so
any node can check a nonce another one issued, and a nonce older than `max_age` is reported stale
(RFC 7616 §3.3: the client retries with the new nonce without asking the user again).
Replays within `max_age` are not detected: that needs per-nonce nonce-count state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.sip.errors import RemoteProtocolError

_HASHES: dict[str, Callable[..., Any]] = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|\Z)')
# A nonce from a clock this far ahead of ours was not issued by a node of ours.
_MAX_CLOCK_SKEW = 30.0


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of `DigestChallenger.verify`.

    `ok` and `username` are set only when the credentials are right and the nonce fresh; `stale`
    when the credentials are right but the nonce expired (re-challenge with ``stale=True``).
    Every other failure — unknown user, wrong password, forged nonce, garbage — looks the same.
    """

    ok: bool
    stale: bool
    username: str | None


_REJECTED = AuthResult(False, False, None)


def _hex_digest(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8")).hexdigest()


def digest_response(
    algorithm: str, ha1: str, *, nonce: str, method: str, uri: str, qop: str | None, nc: str, cnonce: str
) -> str:
    """The request-digest of RFC 2617 §3.2.2.1 / RFC 7616 §3.4.1 from a known HA1."""
    ha2 = _hex_digest(algorithm, f"{method}:{uri}")
    if qop:
        return _hex_digest(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hex_digest(algorithm, f"{ha1}:{nonce}:{ha2}")  # RFC 2069 compatibility


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), what a user store may keep instead of the password."""
    return _hex_digest(algorithm, f"{username}:{realm}:{password}")


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Scheme and parameters (names lower-cased, quotes removed) of a challenge or credentials."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM_RE.match(rest, position)
        if match is None or match.end() == position:
            raise RemoteProtocolError(f"malformed auth parameters {value[:80]!r}", 400)
        name, raw = match.groups()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
        position = match.end()
    return scheme, params


class DigestChallenger:
    """Issues WWW-Authenticate challenges and verifies Authorization headers for one realm."""

    def __init__(self, secret: bytes, realm: str, max_age: float = 300.0) -> None:
        if not secret:
            raise ValueError("the nonce secret must not be empty")
        self._secret = secret
        self.realm = realm
        self.max_age = max_age
        # Checking an unknown user against a throw-away secret costs what a real check costs.
        self._decoy_password = secrets.token_hex(16)
        self._decoy_ha1 = {name: _hex_digest(name, self._decoy_password) for name in _HASHES}

    def challenge(self, now: float, *, algorithm: str = "MD5", stale: bool = False) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value with a fresh nonce."""
        if algorithm not in _HASHES:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        value = (
            f'Digest realm="{_quote(self.realm)}", nonce="{self._make_nonce(now)}", '
            f'algorithm={algorithm}, qop="auth"'
        )
        return value + ", stale=true" if stale else value

    def verify(
        self,
        header_value: str,
        method: str,
        now: float,
        lookup: Callable[[str], str | None],
        *,
        lookup_gives_ha1: bool = False,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check credentials; `lookup(username)` gives the password (or its HA1), None if unknown.

        With `request_uri`, the digest's `uri` must name it (RFC 2617 §3.2.2.5), so a response
        captured for one request cannot authorise a request for another URI.
        """
        try:
            scheme, params = parse_auth_params(header_value)
        except RemoteProtocolError:
            return _REJECTED
        username = params.get("username")
        nonce = params.get("nonce", "")
        algorithm = params.get("algorithm", "MD5").upper()
        qop = params.get("qop")
        if (
            scheme.lower() != "digest"
            or username is None
            or params.get("realm") != self.realm
            or algorithm not in _HASHES
            or qop not in (None, "auth")
            or "uri" not in params
            or (request_uri is not None and params["uri"] != request_uri)
            or "response" not in params
            or (qop is not None and ("cnonce" not in params or "nc" not in params))
        ):
            return _REJECTED
        issued = self._nonce_time(nonce)
        if issued is None or issued > now + _MAX_CLOCK_SKEW:
            return _REJECTED
        secret = lookup(username)
        known = secret is not None
        if secret is None:
            secret = self._decoy_ha1[algorithm] if lookup_gives_ha1 else self._decoy_password
        ha1 = secret if lookup_gives_ha1 else compute_ha1(algorithm, username, self.realm, secret)
        expected = digest_response(
            algorithm, ha1, nonce=nonce, method=method, uri=params["uri"], qop=qop,
            nc=params.get("nc", ""), cnonce=params.get("cnonce", ""),
        )
        matches = hmac.compare_digest(expected.encode(), params["response"].lower().encode())
        if not (matches and known):
            return _REJECTED
        if now - issued > self.max_age:
            return AuthResult(False, True, username)
        return AuthResult(True, False, username)

    def _make_nonce(self, now: float) -> str:
        body = f"{int(now * 1000):x}.{secrets.token_hex(8)}"
        return f"{body}.{self._mac(body)}"

    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, f"{body}.{self.realm}".encode(), hashlib.sha256).hexdigest()[:32]

    def _nonce_time(self, nonce: str) -> float | None:
        """Issue time of a nonce we made, or None when it is not one of ours."""
        stamp, dot, rest = nonce.partition(".")
        salt, dot2, mac = rest.partition(".")
        if not (dot and dot2 and stamp and salt) or len(stamp) > 16:
            return None
        if not hmac.compare_digest(self._mac(f"{stamp}.{salt}").encode(), mac.encode()):
            return None
        try:
            return int(stamp, 16) / 1000.0
        except ValueError:
            return None


def build_authorization(
    challenge_value: str, *, method: str, uri: str, username: str, password: str, cnonce: str, nc: int = 1
) -> str:
    """Authorization value answering a WWW-Authenticate challenge (client side, RFC 7616 §3.4)."""
    scheme, params = parse_auth_params(challenge_value)
    if scheme.lower() != "digest" or "nonce" not in params or "realm" not in params:
        raise RemoteProtocolError(f"not a digest challenge: {challenge_value[:80]!r}", 400)
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in _HASHES:
        raise RemoteProtocolError(f"unsupported digest algorithm {algorithm!r}", 400)
    offered = {item.strip().lower() for item in params.get("qop", "").split(",") if item.strip()}
    qop = "auth" if "auth" in offered else None
    if offered and qop is None:
        raise RemoteProtocolError("challenge offers no qop=auth", 400)
    realm, nonce, nc_text = params["realm"], params["nonce"], f"{nc:08x}"
    response = digest_response(
        algorithm, compute_ha1(algorithm, username, realm, password),
        nonce=nonce, method=method, uri=uri, qop=qop, nc=nc_text, cnonce=cnonce,
    )
    parts = [
        f'Digest username="{_quote(username)}"', f'realm="{_quote(realm)}"', f'nonce="{_quote(nonce)}"',
        f'uri="{_quote(uri)}"', f'response="{response}"', f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f'cnonce="{_quote(cnonce)}"', f"qop={qop}", f"nc={nc_text}"]
    if "opaque" in params:
        parts.append(f'opaque="{_quote(params["opaque"])}"')
    return ", ".join(parts)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
