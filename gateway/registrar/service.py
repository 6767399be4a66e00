"""REGISTER processing (RFC 3261 §10.3), sans-IO: a request and `now` in, the response out.

Unknown and known users get the very same 401 (no extension enumeration): the challenge does not
depend on the username, and a wrong password for a real user is answered like an unknown user.
"""

from __future__ import annotations

import logging

from gateway.registrar.bindings import Binding, BindingStore
from gateway.registrar.gate import DigestGate
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import NameAddr, parse_name_addr
from gateway.sip.message import Request, Response, make_response
from gateway.sip.uri import parse_uri

log = logging.getLogger(__name__)

Target = tuple[str, str, int]


class Registrar:
    """Validates, authenticates and applies REGISTER requests to a `BindingStore`."""

    __slots__ = (
        "store", "gate", "min_expires", "max_expires", "default_expires", "max_contacts_per_aor", "_tag",
    )

    def __init__(
        self,
        store: BindingStore,
        gate: DigestGate,
        *,
        min_expires: int = 60,
        max_expires: int = 7200,
        default_expires: int = 3600,
        max_contacts_per_aor: int = 10,
        to_tag: str = "reg",
    ) -> None:
        self.store = store
        self.gate = gate
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts_per_aor = max_contacts_per_aor
        self._tag = to_tag

    def handle(self, request: Request, source: Target, now: float) -> Response:
        """Answer one REGISTER; bindings change only when the answer is 200."""
        try:
            return self._handle(request, source, now)
        except RemoteProtocolError as exc:
            return self._reply(request, exc.status_hint, str(exc))

    def _handle(self, request: Request, source: Target, now: float) -> Response:
        verdict = self.gate.verify(request, "Authorization", now, source[1])
        if not verdict.ok:
            response = self._reply(request, 401)
            for challenge in self.gate.challenges(now, stale=verdict.stale):
                response.add("WWW-Authenticate", challenge)
            return response
        aor = _user_of(request.to.uri)
        # §10.3 step 3: an authenticated user may only change its own bindings.
        if aor != verdict.username:
            return self._reply(request, 403, "Forbidden (To user differs from the authenticated user)")
        contacts = request.get_all("Contact")
        if contacts:
            failure = self._apply(request, aor, contacts, source, now)
            if failure is not None:
                return failure
        return self._ok(request, aor, now)

    def _apply(
        self, request: Request, aor: str, contacts: list[str], source: Target, now: float
    ) -> Response | None:
        header_expires = _expires_header(request)
        if any(value.strip() == "*" for value in contacts):
            # §10.2.2: "*" only alone and only with Expires: 0.
            if len(contacts) != 1 or header_expires != 0:
                return self._reply(request, 400, "Bad Request (Contact: * needs Expires: 0 and no other Contact)")
            self.store.remove_all(aor)
            log.debug("registrar: %s removed all bindings", aor)
            return None
        call_id, (cseq, _) = request.call_id, request.cseq
        # §25.1: Call-ID and URIs are ASCII (anything else is %-escaped); raw bytes here would make a
        # binding nothing downstream can store or send.
        if not call_id.isascii():
            return self._reply(request, 400, "Bad Request (Call-ID is not ASCII)")
        parsed: list[tuple[NameAddr, int]] = []
        for value in contacts:
            contact = parse_name_addr(value)
            if not contact.uri.isascii():
                return self._reply(request, 400, "Bad Request (Contact URI is not ASCII; escape it)")
            parse_uri(contact.uri)  # a Contact we could never call is a bad request, not a binding
            expires = _expires_param(contact, header_expires, self.default_expires)
            if 0 < expires < self.min_expires:
                response = self._reply(request, 423)
                response.add("Min-Expires", str(self.min_expires))
                return response
            parsed.append((contact, min(expires, self.max_expires)))
        for contact, _ in parsed:
            existing = self.store.get(aor, contact.uri)
            # §10.3 step 7: the same Call-ID with an older or equal CSeq is out of order.
            if existing is not None and existing.call_id == call_id and existing.cseq >= cseq:
                return self._reply(request, 500, "Server Internal Error (REGISTER out of order)")
        if self._too_many(aor, parsed, now):
            return self._reply(
                request, 403, f"Forbidden (too many Contacts for this AOR: at most {self.max_contacts_per_aor})"
            )
        for contact, expires in parsed:
            if expires == 0:
                self.store.remove(aor, contact.uri)
                continue
            self.store.put(aor, Binding(contact.uri, now + expires, call_id, cseq, source, now))
        log.debug("registrar: %s now has %d binding(s)", aor, len(self.store.current(aor, now)))
        return None

    def _too_many(self, aor: str, parsed: list[tuple[NameAddr, int]], now: float) -> bool:
        """True when applying `parsed` would leave `aor` with more live Contacts than allowed.

        Refusing beats evicting the oldest: §10.3 sets no limit, so this is local policy, and a phone
        that rebinds with a new Contact on every reconnect must not push out a desk phone that
        refreshes hourly (Kamailio's max_contacts refuses the same way).
        """
        before = set(self.store.contacts(aor, now))
        after = set(before)
        for contact, expires in parsed:
            if expires == 0:
                after.discard(contact.uri)
            else:
                after.add(contact.uri)
        # Only growth is refused: an AOR already above the cap (the cap was lowered) may still refresh.
        return len(after) > self.max_contacts_per_aor and not after <= before

    def _ok(self, request: Request, aor: str, now: float) -> Response:
        response = self._reply(request, 200)
        for binding in self.store.current(aor, now):
            response.add("Contact", f"<{binding.contact}>;expires={binding.remaining(now)}")
        return response

    def _reply(self, request: Request, status: int, reason: str | None = None) -> Response:
        return make_response(request, status, reason, to_tag=self._tag)


def _user_of(uri_text: str) -> str:
    user = parse_uri(uri_text).user
    if not user:
        raise RemoteProtocolError("To URI has no user part", 400)
    return user


def _expires_header(request: Request) -> int | None:
    value = request.get("Expires")
    if value is None:
        return None
    return _delta_seconds(value)


def _expires_param(contact: NameAddr, header: int | None, default: int) -> int:
    value = contact.params.get("expires")
    if value is not None:
        return _delta_seconds(value)
    return header if header is not None else default


def _delta_seconds(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 10:
        raise RemoteProtocolError(f"malformed expires value {text[:20]!r}", 400)
    return int(text)
