"""Contact bindings per address-of-record, with expiry; time is an argument (`now`)."""

from __future__ import annotations

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

    __slots__ = ("_bindings",)

    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}

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

    def remove(self, aor: str, contact: str) -> None:
        by_contact = self._bindings.get(aor)
        if by_contact is not None:
            by_contact.pop(contact, None)
            if not by_contact:
                del self._bindings[aor]

    def remove_all(self, aor: str) -> None:
        self._bindings.pop(aor, None)

    def has_live(self, aor: str, now: float) -> bool:
        """Whether `aor` has a binding that has not expired (routing asks this of every queue member)."""
        by_contact = self._bindings.get(aor)
        return by_contact is not None and any(binding.expires_at > now for binding in by_contact.values())

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
