"""Digest authentication of requests against the configured users (RFC 2617 / RFC 3261 §22).

The one place that knows passwords; they are never logged nor put in any answer. Replayed
credentials (a nonce-count already seen, see `gateway.sip.auth.ReplayGuard`) are refused as stale:
the sender gets a fresh challenge, which only the holder of the password can answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.sip.auth import DigestChallenger
from gateway.sip.message import Request

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the request's credentials are good, whether its nonce was merely stale, and who."""

    ok: bool
    stale: bool = False
    username: str | None = None


class DigestGate:
    """Challenges and verifies one header (Authorization for REGISTER, Proxy-Authorization for INVITE)."""

    __slots__ = ("_challenger", "_passwords", "algorithms")

    def __init__(
        self,
        secret: bytes,
        realm: str,
        max_age: float,
        passwords: Mapping[str, str],
        *,
        max_nonces: int = 100_000,
        algorithms: tuple[str, ...] = ("MD5",),
    ) -> None:
        if not algorithms or len(set(algorithms)) != len(algorithms):
            raise ValueError("digest algorithms: name each one once, at least one")
        self._challenger = DigestChallenger(secret, realm, max_age, max_nonces=max_nonces)
        self._passwords = dict(passwords)
        self.algorithms = algorithms
        for algorithm in algorithms:
            self._challenger.challenge(0.0, algorithm=algorithm)  # an unknown name fails here, not per call

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """The WWW-Authenticate / Proxy-Authenticate values, one per algorithm, most preferred first
        (RFC 8760 §2.4: a client answers the first one it supports); identical whoever asks."""
        return [self._challenger.challenge(now, algorithm=algorithm, stale=stale) for algorithm in self.algorithms]

    def verify(self, request: Request, header: str, now: float) -> Verdict:
        """Check `header` of `request`; an unknown user fails exactly like a wrong password."""
        value = request.get(header)
        if value is None:
            return Verdict(False)
        result = self._challenger.verify(
            value, request.method, now, self._passwords.get, request_uri=request.uri
        )
        if result.replay:
            log.info("digest: replayed %s credentials of %s refused (stale)", request.method, result.username)
        return Verdict(bool(result.ok), bool(result.stale), result.username if result.ok else None)
