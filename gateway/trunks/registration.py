"""The gateway's registration at one provider trunk (RFC 3261 §10.2), as a sans-IO state machine.

`OutboundRegistration` is fed answers, failures and the time; it returns the REGISTER to send (or
None) and exposes `deadline`, the loop-clock time it wants `on_timer` called. It sends nothing and
arms nothing itself: `gateway.trunks.registrations.TrunkRegistrations` does that.

Rules it follows, where RFC 3261 leaves a choice:
- one Call-ID and From tag for the machine's life, CSeq growing by one per REGISTER (§10.2.4);
- every attempt (first, refresh, retry) starts without credentials: credentials are computed for
  the challenge that attempt gets, so a provider's nonce policy never strands us with a stale one;
- of the challenges in a 401/407, one whose algorithm we support, SHA-256 first (RFC 8760 §2.4);
  a challenge for a nonce already answered in this attempt that is not `stale=true` means the
  credentials were refused (so does a fourth challenge in one attempt: no endless loop);
- refresh at half the granted expiry when it is under `SHORT_EXPIRY`, else `REFRESH_MARGIN`
  seconds before it ends;
- 423 is retried at once with Min-Expires (only when that is more than we asked);
- any other failure (403, 404, 5xx, 3xx, no answer 408, transport error 503, a 2xx keeping no
  binding) makes the state `failing` and retries after `backoff_base * 2**(n-1)` seconds for the n-th
  failure in a row, at most `backoff_cap` (a longer Retry-After, up to the cap, is honoured);
- while a refresh or a retry is under way the state stays `registered` / `failing`: the status
  keeps saying what the last answer was until a new one comes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gateway.sip.auth import build_authorization, parse_auth_params
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.events import Target
from gateway.sip.headers import parse_name_addr
from gateway.sip.message import Request, Response
from gateway.sip.uri import SipUri, parse_uri
from gateway.trunks.model import TrunkSpec

# Preference order: the first one a challenge offers is answered.
SUPPORTED_ALGORITHMS = ("SHA-256", "MD5")
REFRESH_MARGIN = 60.0
SHORT_EXPIRY = 2 * REFRESH_MARGIN
MAX_CHALLENGES_PER_ATTEMPT = 3
DEFAULT_BACKOFF_BASE = 30.0
DEFAULT_BACKOFF_CAP = 600.0
TIMEOUT = 408
UNREACHABLE = 503
_NO_ANSWER_REASONS = {
    TIMEOUT: "Request Timeout (no answer from the registrar)",
    UNREACHABLE: "Service Unavailable (the registrar cannot be reached)",
}


class RegistrationState(StrEnum):
    REGISTERING = "registering"  # the first attempt is under way
    REGISTERED = "registered"
    FAILING = "failing"  # the last attempt failed; another one is due at `next_attempt`
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """What the admin API and /metrics show of one registration; times are on the loop clock."""

    state: RegistrationState
    last_status: int | None
    last_reason: str | None
    registered_until: float | None
    next_attempt: float | None
    failures: int  # every failure since the gateway started registering this trunk
    failures_in_a_row: int


def refresh_delay(granted: float) -> float:
    """Seconds after a 2xx granting `granted` seconds at which the binding is refreshed."""
    return granted / 2 if granted < SHORT_EXPIRY else granted - REFRESH_MARGIN


def choose_challenge(values: list[str]) -> tuple[str, dict[str, str]] | None:
    """The digest challenge to answer among `values` (SHA-256 before MD5), None when none fits."""
    offered: dict[str, tuple[str, dict[str, str]]] = {}
    for value in values:
        try:
            scheme, params = parse_auth_params(value)
        except RemoteProtocolError:
            continue
        algorithm = params.get("algorithm", "MD5").upper()
        if scheme.lower() == "digest" and "nonce" in params and "realm" in params:
            offered.setdefault(algorithm, (value, params))
    for algorithm in SUPPORTED_ALGORITHMS:
        if algorithm in offered:
            return offered[algorithm]
    return None


class OutboundRegistration:
    """Keeps the gateway registered at `trunk`'s registrar, as `username` at `local` (our address)."""

    def __init__(
        self,
        trunk: TrunkSpec,
        local: tuple[str, int],
        *,
        call_id: str,
        tag: str,
        cnonce: Callable[[], str] = lambda: secrets.token_hex(8),
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        failures: int = 0,
    ) -> None:
        if not trunk.username:
            raise ValueError(f"trunk {trunk.name!r} has no username to register with")
        if backoff_base <= 0 or backoff_cap < backoff_base:
            raise ValueError("back-off needs 0 < base <= cap")
        self.trunk = trunk
        self.call_id = call_id
        self.tag = tag
        self._cnonce = cnonce
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.request_uri = trunk.uri()
        host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
        self.aor = f"sip:{trunk.username}@{host}"
        local_host = f"[{local[0]}]" if ":" in local[0] else local[0]
        suffix = "" if trunk.transport == "udp" else f";transport={trunk.transport}"
        self.contact = f"sip:{trunk.username}@{local_host}:{local[1]}{suffix}"
        self._contact_uri = parse_uri(self.contact)
        self.expires = trunk.register_expires
        self.state = RegistrationState.REGISTERING
        self.last_status: int | None = None
        self.last_reason: str | None = None
        self.registered_until: float | None = None
        self.next_attempt: float | None = None
        self.failures = failures
        self.failures_in_a_row = 0
        self.registrar: Target | None = None  # where the last 2xx came from
        self._cseq = 0
        self._pending: int | None = None  # the CSeq of the REGISTER awaiting its final answer
        self._unregistering = False
        self._answered_nonces: set[str] = set()
        self._challenges = 0

    # -- what the adapter reads ------------------------------------------------------------
    @property
    def deadline(self) -> float | None:
        """When `on_timer` is wanted: the next refresh or retry (None while an answer is awaited)."""
        if self.state is RegistrationState.STOPPED or self._pending is not None:
            return None
        return self.next_attempt

    @property
    def finished(self) -> bool:
        """Stopped and awaiting nothing: the adapter may forget this machine."""
        return self.state is RegistrationState.STOPPED and self._pending is None

    @property
    def pending_cseq(self) -> int | None:
        return self._pending

    @property
    def status(self) -> RegistrationStatus:
        return RegistrationStatus(
            self.state, self.last_status, self.last_reason, self.registered_until,
            self.next_attempt if self.deadline is not None else None, self.failures, self.failures_in_a_row,
        )

    # -- inputs ------------------------------------------------------------------------------
    def start(self, now: float) -> Request:
        """The first REGISTER."""
        return self._new_attempt()

    def on_timer(self, now: float) -> Request | None:
        """The refresh or retry, when it is due."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return None
        return self._new_attempt()

    def on_response(self, response: Response, source: Target, now: float) -> Request | None:
        """A response to one of our REGISTERs (provisional ones and stale CSeqs are ignored)."""
        if response.status < 200 or self._pending is None or response.cseq[0] != self._pending:
            return None
        self._pending = None
        status = response.status
        if self.state is RegistrationState.STOPPED and not self._unregistering:
            # Stopped while this REGISTER was out: the un-REGISTER could not go before its answer.
            return self._unregister(now, bound=200 <= status < 300 and self._granted_expiry(response) > 0)
        if status in (401, 407):
            return self._on_challenge(response, now)
        if self._unregistering:
            if 200 <= status < 300:
                self.registered_until = None
            return None
        if 200 <= status < 300:
            self._on_registered(response, source, now)
            return None
        if status == 423:
            return self._on_interval_too_brief(response, now)
        self._fail(status, response.reason, now, _retry_after(response))
        return None

    def on_no_answer(self, cseq: int, status: int, now: float) -> Request | None:
        """REGISTER `cseq` got no final answer: 408 (timeout) or 503 (transport error)."""
        if self._pending != cseq:
            return None
        self._pending = None
        if self.state is RegistrationState.STOPPED and not self._unregistering:
            return self._unregister(now, bound=False)
        if not self._unregistering:
            self._fail(status, _NO_ANSWER_REASONS.get(status, "no answer"), now)
        return None

    def stop(self, now: float, *, unregister: bool = True) -> Request | None:
        """Stop for good; with `unregister`, the un-REGISTER (Expires: 0) when a binding may exist at
        the registrar. §10.2 allows one REGISTER at a time: with one awaiting its answer, the
        un-REGISTER is what `on_response` / `on_no_answer` return once it comes."""
        if self.state is RegistrationState.STOPPED:
            return None
        self.state = RegistrationState.STOPPED
        self.next_attempt = None
        if not unregister:
            self._pending = None
            return None
        if self._pending is not None:
            return None
        return self._unregister(now, bound=False)

    def _unregister(self, now: float, *, bound: bool) -> Request | None:
        if not (bound or (self.registered_until is not None and self.registered_until > now)):
            return None
        self._unregistering = True
        self.expires = 0
        return self._new_attempt()

    # -- transitions -----------------------------------------------------------------------
    def _new_attempt(self) -> Request:
        self._answered_nonces.clear()
        self._challenges = 0
        return self._register()

    def _on_challenge(self, response: Response, now: float) -> Request | None:
        proxy = response.status == 407
        challenge = choose_challenge(response.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate"))
        if challenge is None:
            return self._refused(response, "no digest challenge with a supported algorithm", now)
        value, params = challenge
        nonce, stale = params["nonce"], params.get("stale", "").lower() == "true"
        if (nonce in self._answered_nonces and not stale) or self._challenges >= MAX_CHALLENGES_PER_ATTEMPT:
            return self._refused(response, "credentials refused", now)
        self._answered_nonces.add(nonce)
        self._challenges += 1
        try:
            credentials = build_authorization(
                value, method="REGISTER", uri=self.request_uri, username=self.trunk.username or "",
                password=self.trunk.secret or "", cnonce=self._cnonce(),
            )
        except RemoteProtocolError as error:
            return self._refused(response, f"challenge not answerable: {error}", now)
        return self._register(("Proxy-Authorization" if proxy else "Authorization", credentials))

    def _refused(self, response: Response, why: str, now: float) -> Request | None:
        """Give up on this attempt (an un-REGISTER just ends)."""
        if not self._unregistering:
            self._fail(response.status, f"{response.reason} ({why})", now)
        return None

    def _on_registered(self, response: Response, source: Target, now: float) -> None:
        granted = self._granted_expiry(response)
        if granted <= 0:
            self._fail(response.status, f"{response.reason} (the registrar kept no binding)", now)
            return
        self.state = RegistrationState.REGISTERED
        self.last_status, self.last_reason = response.status, response.reason
        self.registered_until = now + granted
        self.next_attempt = now + refresh_delay(granted)
        self.failures_in_a_row = 0
        self.registrar = source

    def _on_interval_too_brief(self, response: Response, now: float) -> Request | None:
        minimum = _int_header(response, "Min-Expires")
        if minimum is None or minimum <= self.expires:
            self._fail(response.status, f"{response.reason} (no usable Min-Expires)", now)
            return None
        self.expires = minimum
        return self._new_attempt()

    def _fail(self, status: int, reason: str, now: float, retry_after: int | None = None) -> None:
        self.state = RegistrationState.FAILING
        self.last_status, self.last_reason = status, reason
        self.failures += 1
        self.failures_in_a_row += 1
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (self.failures_in_a_row - 1))
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), self.backoff_cap))
        self.next_attempt = now + delay

    # -- messages --------------------------------------------------------------------------
    def _register(self, credentials: tuple[str, str] | None = None) -> Request:
        self._cseq += 1
        self._pending = self._cseq
        headers = [
            ("From", f"<{self.aor}>;tag={self.tag}"),
            ("To", f"<{self.aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<{self.contact}>"),
            ("Expires", str(self.expires)),
        ]
        if credentials is not None:
            headers.append(credentials)
        return Request("REGISTER", self.request_uri, headers)

    def _granted_expiry(self, response: Response) -> int:
        """Our Contact's expires in the 2xx, else its Expires header, else what we asked (§10.2.4)."""
        for value in response.get_all("Contact"):
            try:
                contact = parse_name_addr(value)
                uri = parse_uri(contact.uri)
            except RemoteProtocolError:
                continue
            if _same_contact(uri, self._contact_uri):
                expires = contact.params.get("expires")
                if expires is not None and expires.strip().isdigit():
                    return int(expires)
        header = _int_header(response, "Expires")
        return header if header is not None else self.expires


def _same_contact(seen: SipUri, ours: SipUri) -> bool:
    return (seen.user, seen.host.lower(), seen.port or 5060) == (ours.user, ours.host.lower(), ours.port or 5060)


def _int_header(response: Response, name: str) -> int | None:
    value = response.get(name)
    if value is None:
        return None
    text = value.split(";", 1)[0].split("(", 1)[0].strip()
    return int(text) if text.isdigit() else None


def _retry_after(response: Response) -> int | None:
    return _int_header(response, "Retry-After")
