"""Digest authentication of requests against the configured users (RFC 2617 / RFC 3261 §22).

The one place that knows passwords; they are never logged nor put in any answer. Replayed
credentials (a nonce-count already seen, see `gateway.sip.auth.ReplayGuard`) and credentials on
another node's nonce are refused as stale: the sender gets a fresh challenge, which only the holder
of the password can answer. Every failed attempt (credentials present, wrong, not merely stale) is
told to `on_failure(source host, now)`: the source guard counts them per address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.sip.auth import DigestChallenger, parse_auth_params
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Request

#: ``lookup(username, algorithm)``: the stored digest HA1 of a user for this realm, None if unknown.
Ha1Lookup = Callable[[str, str], "str | None"]


#: ``on_failure(source_host, now)``: a request from that address carried credentials that were wrong.
FailureListener = Callable[[str, float], None]


def _no_ha1(username: str, algorithm: str) -> str | None:
    return None


def _nobody_listens(host: str, now: float) -> None:
    return None

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the request's credentials are good, whether its nonce was merely stale, and who."""

    ok: bool
    stale: bool = False
    username: str | None = None


class DigestGate:
    """Challenges and verifies one header (Authorization for REGISTER, Proxy-Authorization for INVITE)."""

    __slots__ = ("_challenger", "_passwords", "_ha1", "algorithms", "on_failure")

    def __init__(
        self,
        secret: bytes,
        realm: str,
        max_age: float,
        passwords: Mapping[str, str],
        *,
        max_nonces: int = 100_000,
        algorithms: tuple[str, ...] = ("MD5",),
        ha1: Ha1Lookup = _no_ha1,
        node_id: str = "",
        on_failure: FailureListener = _nobody_listens,
    ) -> None:
        """`passwords`: the configuration's users; `ha1`: users whose only the digest HA1 is stored
        (employees' phones, set through the admin API); a configured password wins over an HA1.
        `node_id` names this node in its nonces (see `gateway.sip.auth`; default random)."""
        if not algorithms or len(set(algorithms)) != len(algorithms):
            raise ValueError("digest algorithms: name each one once, at least one")
        self._challenger = DigestChallenger(secret, realm, max_age, max_nonces=max_nonces, node=node_id)
        self.on_failure = on_failure
        self._passwords = dict(passwords)
        self._ha1 = ha1
        self.algorithms = algorithms
        for algorithm in algorithms:
            self._challenger.challenge(0.0, algorithm=algorithm)  # an unknown name fails here, not per call

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """The WWW-Authenticate / Proxy-Authenticate values, one per algorithm, most preferred first
        (RFC 8760 §2.4: a client answers the first one it supports); identical whoever asks."""
        return [self._challenger.challenge(now, algorithm=algorithm, stale=stale) for algorithm in self.algorithms]

    def verify(self, request: Request, header: str, now: float, source: str | None = None) -> Verdict:
        """Check `header` of `request` (sent from the host `source`); an unknown user fails exactly
        like a wrong password."""
        value = request.get(header)
        if value is None:
            return Verdict(False)
        stored = self._stored_ha1(value)
        if stored is None:
            result = self._challenger.verify(value, request.method, now, self._passwords.get, request_uri=request.uri)
        else:
            result = self._challenger.verify(
                value, request.method, now, lambda _user: stored, lookup_gives_ha1=True, request_uri=request.uri
            )
        if result.replay:
            log.info("digest: replayed %s credentials of %s refused (stale)", request.method, result.username)
        elif result.foreign:
            log.info("digest: %s credentials of %s on another node's nonce (stale)", request.method, result.username)
        elif not (result.ok or result.stale) and source is not None:
            self.on_failure(source, now)
        return Verdict(bool(result.ok), bool(result.stale), result.username if result.ok else None)

    def _stored_ha1(self, value: str) -> str | None:
        """The stored HA1 for the credentials' user and algorithm, when that user has no password here."""
        try:
            _scheme, params = parse_auth_params(value)
        except RemoteProtocolError:
            return None
        username = params.get("username")
        if username is None or username in self._passwords:
            return None
        return self._ha1(username, params.get("algorithm", "MD5").upper())
