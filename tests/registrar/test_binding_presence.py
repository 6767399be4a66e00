"""`BindingStore.has_live`: the yes/no question routing asks of every queue member (SPEC R3: no phone)."""

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_r3_the_live_users_follow_every_change_and_expiry_though_the_set_is_reused_between_them() -> None:
    store = BindingStore()
    store.put("1001", _binding("sip:1001@127.0.0.1:5090", expires_at=100.0))
    store.put("1002", _binding("sip:1002@127.0.0.1:5091", expires_at=200.0))
    first = store.live_users(10.0)
    assert first == {"1001", "1002"}
    assert store.live_users(50.0) is first  # nothing changed or expired: the same set, not a new one
    assert store.live_users(100.0) == {"1002"}  # 1001's only binding expired at 100
    store.put("1003", _binding("sip:1003@127.0.0.1:5092", expires_at=300.0))
    assert store.live_users(100.0) == {"1002", "1003"}
    store.remove("1002", "sip:1002@127.0.0.1:5091")
    assert store.live_users(100.0) == {"1003"}
    store.remove_all("1003")
    assert store.live_users(100.0) == frozenset()
    # A refresh (the same contact put again with a later expiry) keeps the user live past the old expiry.
    store.put("1001", _binding("sip:1001@127.0.0.1:5090", expires_at=150.0))
    assert store.live_users(120.0) == {"1001"}
    store.put("1001", _binding("sip:1001@127.0.0.1:5090", expires_at=400.0))
    assert store.live_users(200.0) == {"1001"}
    assert store.live_users(399.0) == {"1001"}
    assert store.live_users(400.0) == frozenset()
    # An earlier time than the set was made for is answered afresh.
    assert store.live_users(5.0) == {"1001"}


def test_r3_the_live_users_agree_with_the_contacts_routing_would_ring_at_any_time() -> None:
    store = BindingStore()
    expiries = {"1001": (50.0, 120.0), "1002": (80.0,), "1003": (), "1004": (10.0, 10.0, 300.0)}
    for aor, times in expiries.items():
        for index, expires_at in enumerate(times):
            store.put(aor, _binding(f"sip:{aor}@127.0.0.1:{5090 + index}", expires_at))
    for now in (0.0, 9.0, 10.0, 49.0, 50.0, 79.0, 80.0, 119.0, 120.0, 299.0, 300.0, 301.0):
        live = store.live_users(now)
        for aor in expiries:
            assert (aor in live) == bool(store.contacts(aor, now)) == store.has_live(aor, now), (aor, now)


_AORS = ("1001", "1002", "1003")
_CONTACTS = ("sip:a@127.0.0.1:5090", "sip:b@127.0.0.1:5091")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(_AORS), st.sampled_from(_CONTACTS), st.integers(0, 40)),
    st.tuples(st.just("remove"), st.sampled_from(_AORS), st.sampled_from(_CONTACTS), st.just(0)),
    st.tuples(st.just("remove_all"), st.sampled_from(_AORS), st.just(""), st.just(0)),
    st.tuples(st.just("ask"), st.just(""), st.just(""), st.integers(0, 40)),
), max_size=40))
def test_r3_the_live_users_equal_a_scan_of_every_binding_whatever_happened_before(
    operations: list[tuple[str, str, str, int]],
) -> None:
    """The set is kept, and changed one AOR at a time, between questions: it must always answer as a
    fresh scan of every binding would."""
    store = BindingStore()
    for operation, aor, contact, time in operations:
        if operation == "put":
            store.put(aor, _binding(contact, float(time)))
        elif operation == "remove":
            store.remove(aor, contact)
        elif operation == "remove_all":
            store.remove_all(aor)
        else:
            scanned = {a for a in _AORS if any(
                binding is not None and binding.expires_at > time for binding in (store.get(a, c) for c in _CONTACTS))}
            assert store.live_users(float(time)) == scanned, (operations, time)
