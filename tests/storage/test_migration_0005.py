"""Revision 0005 on data (SPEC T1): the per-number trunk_* columns become trunks the numbers point to,
and a downgrade writes them back (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.storage.session import current_revision, downgrade_database, upgrade_database
from tests.storage.test_migration_0003 import _execute, _rows

_NUMBER_COLUMNS = ("id, kind, number, e164, name, default_region, unknown_caller_action, create_for,"
                   " route_known_to_responsible, change_responsible_on_transfer, created_at, updated_at,"
                   " trunk_host, trunk_port, trunk_username, trunk_password")
_STAMP = "'2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00'"


def _number(number_id: int, kind: str, e164: str, host: str | None, port: int | None,
            username: str | None, password: str | None) -> str:
    def literal(value: object) -> str:
        return "NULL" if value is None else (str(value) if isinstance(value, int) else f"'{value}'")
    trunk = ", ".join(literal(v) for v in (host, port, username, password))
    return (f"({number_id}, '{kind}', '{e164}', '{e164}', 'n{number_id}', 'FR', 'auto_lead', 'all',"
            f" false, false, {_STAMP}, {trunk})")


def _at_0004_with_numbers(url: str) -> None:
    upgrade_database(url, "0004")
    rows = [
        _number(1, "rented", "+33184880001", "sip.provider.example", 5060, "paris", "s3cret"),
        _number(2, "rented", "+33184880002", "sip.provider.example", 5060, "paris", "s3cret"),
        _number(3, "sip_pbx", "+33184880003", "pbx.customer.example", None, None, None),
        _number(4, "rented", "+33184880004", "sip.provider.example", 5060, "milano", "other"),
        _number(5, "rented", "+33184880005", None, None, "orphan", "no-host"),
    ]
    _execute(
        url,
        f"INSERT INTO numbers ({_NUMBER_COLUMNS}) VALUES {', '.join(rows)}",
        "INSERT INTO calls (id, interaction_key, call_id, direction, number_id, number, party_raw, started_at,"
        " offered_ids, routing) VALUES (1, 'k1', 'c1', 'inbound', 1, '+33184880001', '+33612345678',"
        " '2026-01-01 00:00:00+00:00', '[]', '{}')",
    )


def test_t1_0005_moves_number_trunks_into_shared_trunks(empty_db_url: str) -> None:
    _at_0004_with_numbers(empty_db_url)
    upgrade_database(empty_db_url, "0005")
    trunks = _rows(empty_db_url, "SELECT id, name, kind, host, port, transport, trust, username, secret,"
                                 " number_headers, caller_id_format, register_expires, enabled FROM trunks ORDER BY id")
    assert [row[1:] for row in trunks] == [
        ("trunk sip.provider.example:5060", "provider", "sip.provider.example", 5060, "udp", "registration",
         "paris", "s3cret", "request_uri,to", "e164_plus", 3600, True),
        ("trunk pbx.customer.example:5060", "pbx", "pbx.customer.example", 5060, "udp", "source",
         None, None, "request_uri,to", "e164_plus", 3600, True),
        ("trunk sip.provider.example:5060 (2)", "provider", "sip.provider.example", 5060, "udp", "registration",
         "milano", "other", "request_uri,to", "e164_plus", 3600, True),
    ]
    paris, pbx, milano = (row[0] for row in trunks)
    assert _rows(empty_db_url, "SELECT id, trunk_id, default_outbound FROM numbers ORDER BY id") == [
        (1, paris, False), (2, paris, False), (3, pbx, False), (4, milano, False), (5, None, False)]
    assert _rows(empty_db_url, "SELECT id, number_id FROM calls") == [(1, 1)]  # the rebuild kept the call log
    assert _rows(empty_db_url, "SELECT count(*) FROM employees WHERE outbound_number_id IS NOT NULL") == [(0,)]


def test_t1_0005_allows_one_default_outbound_number_only(empty_db_url: str) -> None:
    _at_0004_with_numbers(empty_db_url)
    upgrade_database(empty_db_url, "0005")
    _execute(empty_db_url, "UPDATE numbers SET default_outbound = true WHERE id = 1")
    with pytest.raises(sa.exc.IntegrityError):
        _execute(empty_db_url, "UPDATE numbers SET default_outbound = true WHERE id = 2")


def test_t1_0005_refuses_deleting_a_trunk_that_carries_numbers(empty_db_url: str) -> None:
    _at_0004_with_numbers(empty_db_url)
    upgrade_database(empty_db_url, "0005")
    with pytest.raises(sa.exc.IntegrityError):
        _execute(empty_db_url, "PRAGMA foreign_keys=ON" if "sqlite" in empty_db_url else "SELECT 1",
                 "DELETE FROM trunks WHERE name = 'trunk pbx.customer.example:5060'")


def test_t1_0005_down_writes_trunks_back_into_numbers(empty_db_url: str) -> None:
    _at_0004_with_numbers(empty_db_url)
    upgrade_database(empty_db_url, "0005")
    _execute(empty_db_url, "UPDATE trunks SET secret = 'rotated' WHERE username = 'paris'")
    downgrade_database(empty_db_url, "0004")
    assert current_revision(empty_db_url) == "0004"
    assert _rows(empty_db_url, "SELECT id, trunk_host, trunk_port, trunk_username, trunk_password"
                               " FROM numbers ORDER BY id") == [
        (1, "sip.provider.example", 5060, "paris", "rotated"),
        (2, "sip.provider.example", 5060, "paris", "rotated"),
        (3, "pbx.customer.example", 5060, None, None),
        (4, "sip.provider.example", 5060, "milano", "other"),
        (5, None, None, None, None),
    ]
    assert _rows(empty_db_url, "SELECT id, number_id FROM calls") == [(1, 1)]
    upgrade_database(empty_db_url, "0005")
    assert _rows(empty_db_url, "SELECT count(*) FROM trunks") == [(3,)]
