"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616): MD5 and SHA-256, qop=auth.

Nonces are stateless: ``<time in ms, hex>.<salt>.<node>.<HMAC>`` keyed by a secret shared by every
node. A nonce older than `max_age` is reported stale (RFC 7616 §3.3: the client retries with the new
nonce without asking the user again).

Replays within `max_age` are refused by a bounded `ReplayGuard` fed only with verified credentials:
with qop the nonce-count must grow per nonce (RFC 7616 §3.4, RFC 2617 §3.2.2), without qop a nonce
serves once. A refused replay is answered as stale, so an honest client simply takes the fresh nonce.
The guard is per process, so a nonce is good only on the node that issued it (the node id inside it,
under the HMAC): credentials carrying another node's nonce are answered stale too, and a replay sent
to another node that shares the secret finds no nonce there to spend.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.sip.errors import RemoteProtocolError

_HASHES: dict[str, Callable[..., Any]] = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|\Z)')
# A nonce from a clock this far ahead of ours was not issued by a node of ours.
_MAX_CLOCK_SKEW = 30.0
# A node id is a label inside the nonce: no dot (the nonce's separator), short.
_NODE_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
# nc is 8LHEX (RFC 7616 §3.4); longer would let a client pick counts past our "spent" marker.
_NC_RE = re.compile(r"[0-9A-Fa-f]{1,8}")
# Above every 8-digit nonce-count: a nonce used without qop (RFC 2069) is spent after one use.
_SPENT = 1 << 32


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of `DigestChallenger.verify`.

    `ok` and `username` are set only when the credentials are right and the nonce fresh; `stale`
    when the credentials are right but the nonce expired or was already used with this nonce-count
    (`replay`): re-challenge with ``stale=True``.
    Every other failure — unknown user, wrong password, forged nonce, garbage — looks the same.
    """

    ok: bool
    stale: bool
    username: str | None
    replay: bool = False
    #: The nonce was issued by another node sharing the secret (stale here, like a replay).
    foreign: bool = False


_REJECTED = AuthResult(False, False, None)


def _hex_digest(algorithm: str, text: str) -> str:
    digest: str = _HASHES[algorithm](text.encode("utf-8")).hexdigest()
    return digest


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


class ReplayGuard:
    """The highest nonce-count seen per nonce, kept while the nonce is fresh; bounded, O(1) per check.

    Entries sit in first-use order. One is dropped when its nonce expires or, past `capacity`, the
    oldest goes; either way the issue time of every dropped nonce is folded into a watermark, and a
    nonce issued no later than the watermark that is not remembered counts as used (fail closed: a
    forgotten nonce is never taken for a fresh one; its client just gets a new nonce).
    """

    __slots__ = ("max_age", "capacity", "_seen", "_watermark")

    def __init__(self, max_age: float, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("the replay guard needs room for at least one nonce")
        self.max_age = max_age
        self.capacity = capacity
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._watermark = float("-inf")

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, nonce: str, issued: float, nc: int | None, now: float) -> bool:
        """Record one use of `nonce` (issued at `issued`); False when it is a replay.

        `nc` is the nonce-count of a qop request, None for a request without qop (single use).
        """
        self._expire(now)
        seen = self._seen.get(nonce)
        if seen is None:
            if issued <= self._watermark:
                return False
            self._seen[nonce] = (issued, _SPENT if nc is None else nc)
            if len(self._seen) > self.capacity:
                self._forget_oldest()
            return True
        if nc is None or nc <= seen[1]:
            return False
        self._seen[nonce] = (issued, nc)  # keeps its place: order is first use
        return True

    def _expire(self, now: float) -> None:
        # First-use order is not issue order, so an expired entry may wait behind a younger one;
        # it goes at the latest max_age + clock skew after its first use.
        while self._seen:
            issued = next(iter(self._seen.values()))[0]
            if now - issued <= self.max_age:
                return
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, (issued, _) = self._seen.popitem(last=False)
        self._watermark = max(self._watermark, issued)


class DigestChallenger:
    """Issues WWW-Authenticate challenges and verifies Authorization headers for one realm."""

    def __init__(
        self, secret: bytes, realm: str, max_age: float = 300.0, *, max_nonces: int = 100_000, node: str = ""
    ) -> None:
        """`node` names this process among those sharing `secret` (default: random, so a restart's
        nonces are new ones too: the replay guard does not survive a restart either)."""
        if not secret:
            raise ValueError("the nonce secret must not be empty")
        node = node or secrets.token_hex(4)
        if _NODE_RE.fullmatch(node) is None:
            raise ValueError(f"node id {node!r}: use 1 to 32 letters, digits, _ or -")
        self.node = node
        self._secret = secret
        self.realm = realm
        self.max_age = max_age
        self.replays = ReplayGuard(max_age, max_nonces)
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
        captured for one request cannot authorise a request for another URI. Right credentials whose
        nonce-count was already seen for their nonce (or, without qop, whose nonce was already used)
        are a replay: stale, so only a client that knows the password gets any further.
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
            or (qop is not None and ("cnonce" not in params or not _valid_nc(params.get("nc", ""))))
        ):
            return _REJECTED
        origin = self._nonce_origin(nonce)
        if origin is None or origin[0] > now + _MAX_CLOCK_SKEW:
            return _REJECTED
        issued, node = origin
        secret = lookup(username)
        known = secret is not None
        if secret is None:
            secret = self._decoy_ha1[algorithm] if lookup_gives_ha1 else self._decoy_password
        # One H(A1) on every path, so a stored HA1 (known user) costs what an unknown user costs.
        computed = compute_ha1(algorithm, username, self.realm, self._decoy_password if lookup_gives_ha1 else secret)
        ha1 = secret if lookup_gives_ha1 else computed
        expected = digest_response(
            algorithm, ha1, nonce=nonce, method=method, uri=params["uri"], qop=qop,
            nc=params.get("nc", ""), cnonce=params.get("cnonce", ""),
        )
        matches = hmac.compare_digest(expected.encode(), params["response"].lower().encode())
        if not (matches and known):
            return _REJECTED
        if now - issued > self.max_age:
            return AuthResult(False, True, username)
        if node != self.node:
            # Another node's replay guard saw this nonce, ours did not: only our own nonces are spent here.
            return AuthResult(False, True, username, foreign=True)
        # Only verified credentials reach the guard, so nobody can spend another user's nonce.
        nc = int(params["nc"], 16) if qop is not None else None
        if not self.replays.admit(nonce, issued, nc, now):
            return AuthResult(False, True, username, replay=True)
        return AuthResult(True, False, username)

    def _make_nonce(self, now: float) -> str:
        body = f"{int(now * 1000):x}.{secrets.token_hex(8)}.{self.node}"
        return f"{body}.{self._mac(body)}"

    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, f"{body}.{self.realm}".encode(), hashlib.sha256).hexdigest()[:32]

    def _nonce_origin(self, nonce: str) -> tuple[float, str] | None:
        """Issue time and issuing node of a nonce made with our secret, or None when it is not one."""
        parts = nonce.split(".")
        if len(parts) != 4 or not all(parts) or len(parts[0]) > 16:
            return None
        stamp, salt, node, mac = parts
        if not hmac.compare_digest(self._mac(f"{stamp}.{salt}.{node}").encode(), mac.encode()):
            return None
        try:
            return int(stamp, 16) / 1000.0, node
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


def _valid_nc(text: str) -> bool:
    # RFC 7616 §3.4: the count starts at 00000001; zero never names a request.
    return _NC_RE.fullmatch(text) is not None and int(text, 16) > 0


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
