"""`BindingStore.has_live`: the yes/no question routing asks of every queue member (SPEC R3: no phone)."""

from gateway.registrar.bindings import Binding, BindingStore


def _binding(contact: str, expires_at: float) -> Binding:
    return Binding(contact, expires_at, "reg-1@phone", 1, ("udp", "127.0.0.1", 5090), 0.0)


def test_r3_an_extension_with_a_live_binding_has_a_phone_and_one_that_expired_has_none() -> None:
    store = BindingStore()
    store.put("1001", _binding("sip:1001@127.0.0.1:5090", expires_at=100.0))
    store.put("1002", _binding("sip:1002@127.0.0.1:5091", expires_at=100.0))
    store.put("1002", _binding("sip:1002@127.0.0.1:5092", expires_at=300.0))
    assert store.has_live("1001", 99.0)
    assert not store.has_live("1001", 100.0)
    assert store.has_live("1002", 200.0)  # one of its two contacts is still bound
    assert not store.has_live("1003", 0.0)
    # It agrees with the contacts routing would ring.
    for aor, now in (("1001", 99.0), ("1001", 100.0), ("1002", 200.0), ("1002", 300.0)):
        assert store.has_live(aor, now) == bool(store.contacts(aor, now))
