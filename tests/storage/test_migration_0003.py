"""Revision 0003 on data: numbers get their E.164, queue strategies their R2 names, queue members and
CRM rows survive the table rebuilds, and a downgrade gives the old names back (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.storage.session import current_revision, downgrade_database, sync_url, upgrade_database


def _execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def _rows(url: str, query: str) -> list[tuple]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(query))]
    finally:
        engine.dispose()


def _at_0002_with_data(url: str) -> None:
    upgrade_database(url, "0002")
    _execute(
        url,
        "INSERT INTO employees (id, name, is_admin, can_manage_numbers, active, created_at)"
        " VALUES (1, 'Ann', false, false, true, '2026-01-01 00:00:00+00:00')",
        "INSERT INTO queue_groups (id, name, strategy) VALUES (1, 'Sales', 'sequential'), (2, 'All', 'simultaneous')",
        "INSERT INTO queue_members (group_id, employee_id, position) VALUES (1, 1, 0), (2, 1, 0)",
        "INSERT INTO numbers (id, kind, number, name, default_region, queue_group_id, unknown_caller_action,"
        " create_for, route_known_to_responsible, change_responsible_on_transfer, created_at, updated_at)"
        " VALUES (1, 'rented', '01 84 88 00 00', 'Paris', 'FR', 1, 'auto_lead', 'all', false, false,"
        " '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00'),"
        " (2, 'rented', '+39 02 1234 5678', 'Milano', 'IT', 2, 'auto_lead', 'all', false, false,"
        " '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')",
    )


def test_0003_backfills_e164_and_r2_strategy_names(empty_db_url: str) -> None:
    _at_0002_with_data(empty_db_url)
    upgrade_database(empty_db_url, "0003")
    assert _rows(empty_db_url, "SELECT id, e164, responsible_ring_time_s FROM numbers ORDER BY id") == [
        (1, "+33184880000", 20), (2, "+390212345678", 20)]
    assert _rows(empty_db_url, "SELECT id, strategy, ring_time_s, no_answer_action FROM queue_groups ORDER BY id") == [
        (1, "in_order", 20, "hangup"), (2, "everybody", 20, "hangup")]
    # Rebuilding queue_groups (SQLite batch mode) must not cascade into its members.
    assert _rows(empty_db_url, "SELECT group_id, employee_id, ring_time_s FROM queue_members ORDER BY group_id") == [
        (1, 1, None), (2, 1, None)]


def test_0003_refuses_old_strategy_names_and_duplicate_e164_afterwards(empty_db_url: str) -> None:
    _at_0002_with_data(empty_db_url)
    upgrade_database(empty_db_url, "0003")
    with pytest.raises(sa.exc.IntegrityError):
        _execute(empty_db_url, "INSERT INTO queue_groups (name, strategy) VALUES ('Old', 'sequential')")
    with pytest.raises(sa.exc.IntegrityError):
        _execute(empty_db_url, "UPDATE numbers SET e164 = '+33184880000' WHERE id = 2")


def test_0003_down_maps_strategies_back_and_up_again_restores(empty_db_url: str) -> None:
    _at_0002_with_data(empty_db_url)
    upgrade_database(empty_db_url, "0003")
    _execute(empty_db_url, "UPDATE queue_groups SET strategy = 'evenly' WHERE id = 2")
    downgrade_database(empty_db_url, "0002")
    assert current_revision(empty_db_url) == "0002"
    assert _rows(empty_db_url, "SELECT id, strategy FROM queue_groups ORDER BY id") == [
        (1, "sequential"), (2, "sequential")]
    engine = sa.create_engine(sync_url(empty_db_url))
    try:
        assert "e164" not in {c["name"] for c in sa.inspect(engine).get_columns("numbers")}
    finally:
        engine.dispose()
    upgrade_database(empty_db_url, "0003")
    assert _rows(empty_db_url, "SELECT id, strategy FROM queue_groups ORDER BY id") == [
        (1, "in_order"), (2, "in_order")]
    assert _rows(empty_db_url, "SELECT count(*) FROM queue_members") == [(2,)]


def test_0003_stops_with_what_to_fix_when_a_number_cannot_be_read(empty_db_url: str) -> None:
    _at_0002_with_data(empty_db_url)
    _execute(empty_db_url, "UPDATE numbers SET number = 'reception' WHERE id = 2")
    with pytest.raises(RuntimeError, match=r"numbers row 2: 'reception' is not a phone number in region 'IT'"):
        upgrade_database(empty_db_url, "0003")
    assert current_revision(empty_db_url) == "0002"
