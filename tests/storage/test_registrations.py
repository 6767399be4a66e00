"""The registrar_bindings table through SqlBindingBackend, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from gateway.storage.models.registrations import MAX_CONTACT
from gateway.storage.registrations import SqlBindingBackend, StoredBinding, fits
from gateway.storage.session import make_engine, make_sessionmaker

WALL = 1_800_000_000.0  # an epoch second in 2027: the backend never reads a clock itself


def _binding(aor: str = "1001", contact: str = "sip:1001@10.0.0.7:5062", *, expires_at: float = WALL + 300,
             cseq: int = 2, call_id: str = "reg-1@phone") -> StoredBinding:
    return StoredBinding(aor, contact, expires_at, call_id, cseq, "udp", "10.0.0.7", 5062, WALL - 5)


@pytest.fixture
async def backend(db_url: str) -> AsyncIterator[SqlBindingBackend]:
    engine = make_engine(db_url)
    try:
        yield SqlBindingBackend(make_sessionmaker(engine))
    finally:
        await engine.dispose()


async def _row_count(backend: SqlBindingBackend) -> int:
    async with backend.sessionmaker() as session:
        return (await session.execute(sa.text("SELECT count(*) FROM registrar_bindings"))).scalar_one()


async def test_written_bindings_load_back_field_for_field(backend: SqlBindingBackend) -> None:
    first = _binding()
    second = _binding(contact="sip:1001@[2001:db8::7]:5070;transport=tcp", cseq=2**40, call_id="x" * 1024)
    other = _binding(aor="1002", contact="sip:1002@10.0.0.8", expires_at=WALL + 0.25)
    await backend.write([], [], [first, second, other])
    loaded = await backend.load(WALL)
    assert sorted(loaded, key=lambda b: (b.aor, b.contact)) == sorted(
        [first, second, other], key=lambda b: (b.aor, b.contact)
    )


async def test_expired_rows_are_not_loaded(backend: SqlBindingBackend) -> None:
    await backend.write([], [], [_binding(contact="sip:a@h", expires_at=WALL), _binding(contact="sip:b@h")])
    assert [b.contact for b in await backend.load(WALL)] == ["sip:b@h"]
    assert await backend.load(WALL + 300) == []


async def test_an_upsert_replaces_the_row_of_its_binding(backend: SqlBindingBackend) -> None:
    await backend.write([], [], [_binding(cseq=2)])
    await backend.write([], [], [_binding(cseq=3, expires_at=WALL + 600)])
    assert [(b.cseq, b.expires_at) for b in await backend.load(WALL)] == [(3, WALL + 600)]


async def test_clear_then_delete_then_upsert_in_one_batch(backend: SqlBindingBackend) -> None:
    await backend.write([], [], [_binding(contact="sip:old@h"), _binding(aor="1002", contact="sip:x@h"),
                                 _binding(aor="1002", contact="sip:y@h")])
    # 1001 cleared (Contact: *) then registered anew; 1002 lost one contact.
    await backend.write(["1001"], [("1002", "sip:x@h")], [_binding(contact="sip:new@h")])
    assert sorted((b.aor, b.contact) for b in await backend.load(WALL)) == [
        ("1001", "sip:new@h"), ("1002", "sip:y@h")
    ]


async def test_purge_drops_expired_rows_only(backend: SqlBindingBackend) -> None:
    await backend.write([], [], [_binding(contact="sip:a@h", expires_at=WALL - 1), _binding(contact="sip:b@h")])
    assert await _row_count(backend) == 2
    await backend.write([], [], [], purge_before=WALL)
    assert await _row_count(backend) == 1


async def test_a_binding_too_large_for_the_table_is_skipped_and_its_old_row_removed(
    backend: SqlBindingBackend,
) -> None:
    """A Contact longer than the column is not written (PostgreSQL would fail the whole batch), and
    the row it replaces goes: the database never hands back a binding older than memory's."""
    huge = "sip:1001@h;x=" + "a" * MAX_CONTACT
    assert not fits(_binding(contact=huge))
    await backend.write([], [], [_binding(contact=huge)])  # nothing stored, nothing failed
    await backend.write([], [], [_binding(contact="sip:ok@h", cseq=2)])
    await backend.write([], [], [_binding(contact="sip:ok@h", cseq=3, call_id="c" * 2000), _binding(contact="sip:b@h")])
    assert [(b.contact, b.cseq) for b in await backend.load(WALL)] == [("sip:b@h", 2)]


async def test_a_failed_batch_changes_nothing(backend: SqlBindingBackend) -> None:
    """All or nothing: a batch whose insert fails (the same key twice) leaves the earlier rows."""
    await backend.write([], [], [_binding(contact="sip:keep@h")])
    with pytest.raises(sa.exc.IntegrityError):
        await backend.write(["1001"], [], [_binding(contact="sip:dup@h"), _binding(contact="sip:dup@h")])
    assert [b.contact for b in await backend.load(WALL)] == ["sip:keep@h"]


def test_fits_refuses_text_that_is_not_utf8_and_measures_bytes() -> None:
    """The parser keeps undecodable bytes as surrogates, which no database driver can encode; and a
    column's size is checked in bytes, so a Contact of 2-byte characters cannot pass on its length
    in characters (bytes also bound the (aor, contact) key for PostgreSQL's btree)."""
    assert fits(_binding(contact="sip:1001@h;x=é"))
    assert not fits(_binding(contact="sip:1001@h;x=\udcff"))
    assert not fits(_binding(call_id="reg-\udcff"))
    assert not fits(_binding(aor="10\udcff1"))
    assert not fits(_binding(contact="sip:1001@h;x=" + "é" * 600))  # 600 characters, 1213 bytes
    assert fits(_binding(contact="sip:1001@h;x=" + "a" * (MAX_CONTACT - 13)))


async def test_bindings_the_database_cannot_encode_are_skipped_and_the_rest_written(
    backend: SqlBindingBackend,
) -> None:
    """Undecodable bytes (surrogates) in an upsert, a deleted key or a cleared AOR used to fail the
    whole batch with UnicodeEncodeError; on PostgreSQL a Contact of 1000 random 3-byte characters
    fits VARCHAR(1024) but not the primary key's btree (2704 bytes at most)."""
    rng = random.Random(7)
    wide = "sip:1001@h;x=" + "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(1000))
    await backend.write(["10\udcff"], [("1001", "sip:x@h;\udcff")],
                        [_binding(contact="sip:1001@h;x=\udcff"), _binding(contact=wide),
                         _binding(call_id="\udcff"), _binding(contact="sip:ok@h")])
    assert [b.contact for b in await backend.load(WALL)] == ["sip:ok@h"]
