"""Contact bindings per address-of-record, with expiry; time is an argument (`now`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class Binding:
    """One Contact bound to an AOR (RFC 3261 §10.3 step 7 keeps Call-ID and CSeq per binding)."""

    contact: str  # the Contact URI text
    expires_at: float
    call_id: str
    cseq: int
    source: tuple[str, str, int]  # where the REGISTER came from (transport, host, port)
    registered_at: float

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


class BindingStore:
    """In-memory bindings keyed by AOR user (the To URI's user part)."""

    __slots__ = ("_bindings", "_live", "_live_from", "_live_until")

    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}
        # `live_users`' answer and the times between which it holds (None: not made yet).
        self._live: frozenset[str] | None = None
        self._live_from = self._live_until = 0.0

    def current(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of `aor`, most recently registered first; expired ones are dropped."""
        by_contact = self._bindings.get(aor)
        if not by_contact:
            return []
        for contact in [c for c, b in by_contact.items() if b.expires_at <= now]:
            del by_contact[contact]
        if not by_contact:
            del self._bindings[aor]
            return []
        return sorted(by_contact.values(), key=lambda b: b.registered_at, reverse=True)

    def get(self, aor: str, contact: str) -> Binding | None:
        return self._bindings.get(aor, {}).get(contact)

    def put(self, aor: str, binding: Binding) -> None:
        self._bindings.setdefault(aor, {})[binding.contact] = binding
        self._changed(aor)
        if self._live is not None:
            # The set holds until the first expiry among its bindings: this one's may come first.
            self._live_until = min(self._live_until, binding.expires_at)

    def remove(self, aor: str, contact: str) -> None:
        by_contact = self._bindings.get(aor)
        if by_contact is not None:
            by_contact.pop(contact, None)
            if not by_contact:
                del self._bindings[aor]
        self._changed(aor)

    def remove_all(self, aor: str) -> None:
        self._bindings.pop(aor, None)
        self._changed(aor)

    def has_live(self, aor: str, now: float) -> bool:
        """Whether `aor` has a binding that has not expired."""
        return aor in self.live_users(now)

    def live_users(self, now: float) -> frozenset[str]:
        """The AORs with a binding that has not expired at `now`.

        Routing asks this for every queue member of every call; the set is made again only when the
        next binding expires (a change to one AOR's bindings updates that AOR alone), not per question.
        """
        live = self._live
        if live is not None and self._live_from <= now < self._live_until:
            return live
        users: set[str] = set()
        until = math.inf
        for aor, by_contact in self._bindings.items():
            for binding in by_contact.values():
                if binding.expires_at > now:
                    users.add(aor)
                    until = min(until, binding.expires_at)
        self._live, self._live_from, self._live_until = frozenset(users), now, until
        return self._live

    def _changed(self, aor: str) -> None:
        """Keep `live_users`' set true for `aor` after its bindings changed: live as of the time the set
        holds from. Removing a binding never brings the first expiry closer, so the set's end stands."""
        live = self._live
        if live is None:
            return
        by_contact = self._bindings.get(aor)
        now_live = by_contact is not None and any(b.expires_at > self._live_from for b in by_contact.values())
        if now_live != (aor in live):
            self._live = live | {aor} if now_live else live - {aor}

    def contacts(self, aor: str, now: float) -> list[str]:
        """Contact URIs of `aor`, most recent first (what routing hunts through)."""
        return [binding.contact for binding in self.current(aor, now)]

    def expire(self, now: float) -> int:
        """Drop every expired binding; returns how many remain."""
        for aor in list(self._bindings):
            self.current(aor, now)
        return sum(len(by_contact) for by_contact in self._bindings.values())

    def __len__(self) -> int:
        return sum(len(by_contact) for by_contact in self._bindings.values())
