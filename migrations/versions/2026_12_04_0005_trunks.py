"""Trunks (SPEC T1, R4): one trunk entity that numbers point to, employees' outbound numbers and the
default outbound number.

Data move: the per-number trunk_host/trunk_port/trunk_username/trunk_password become trunks, one per
distinct (host, port, username, password), named "trunk <host>:<port>" (made unique with " (2)", ...);
kind 'provider' for rented numbers, 'pbx' for PBX numbers (the lowest number id of a shared trunk
decides); trusted by registration when a username is set, else by source address. A number with
credentials but no host had nowhere to send them: it gets no trunk. Downgrade writes every number's
trunk back into its trunk_* columns and drops the trunks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 16:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_COLUMNS = ('trunk_host', 'trunk_port', 'trunk_username', 'trunk_password')
_NUMBERS = sa.table('numbers', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                    sa.column('trunk_id', sa.Integer), sa.column('trunk_host', sa.String),
                    sa.column('trunk_port', sa.Integer), sa.column('trunk_username', sa.String),
                    sa.column('trunk_password', sa.String))
_TRUNKS = sa.table('trunks', sa.column('id', sa.Integer), sa.column('name', sa.String),
                   sa.column('kind', sa.String), sa.column('host', sa.String), sa.column('port', sa.Integer),
                   sa.column('trust', sa.String), sa.column('username', sa.String),
                   sa.column('secret', sa.String), sa.column('deny_patterns', sa.JSON),
                   sa.column('created_at', sa.DateTime(timezone=True)),
                   sa.column('updated_at', sa.DateTime(timezone=True)))


def upgrade() -> None:
    op.create_table('trunks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), server_default='5060', nullable=False),
    sa.Column('transport', sa.String(length=8), server_default='udp', nullable=False),
    sa.Column('trust', sa.String(length=16), server_default='source', nullable=False),
    sa.Column('username', sa.String(length=200), nullable=True),
    sa.Column('secret', sa.String(length=255), nullable=True),
    sa.Column('number_headers', sa.String(length=200), server_default='request_uri,to', nullable=False),
    sa.Column('caller_id_format', sa.String(length=16), server_default='e164_plus', nullable=False),
    sa.Column('register_expires', sa.Integer(), server_default='3600', nullable=False),
    sa.Column('deny_patterns', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("caller_id_format IN ('e164_plus', 'e164', 'national')", name=op.f('ck_trunks_caller_id_format')),
    sa.CheckConstraint("kind IN ('provider', 'pbx')", name=op.f('ck_trunks_kind')),
    sa.CheckConstraint("transport IN ('udp', 'tcp')", name=op.f('ck_trunks_transport')),
    sa.CheckConstraint("trust IN ('source', 'registration', 'digest')", name=op.f('ck_trunks_trust')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trunks')),
    sa.UniqueConstraint('name', name=op.f('uq_trunks_name'))
    )

    with op.batch_alter_table('numbers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trunk_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('default_outbound', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index(batch_op.f('ix_numbers_trunk_id'), ['trunk_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_numbers_trunk_id_trunks'), 'trunks', ['trunk_id'], ['id'])

    _move_number_trunks_to_trunks()

    with op.batch_alter_table('numbers', schema=None) as batch_op:
        for column in _OLD_COLUMNS:
            batch_op.drop_column(column)
    # Outside the batches: SQLite's table rebuild would not carry a partial index's WHERE over.
    op.create_index('ix_numbers_default_outbound', 'numbers', ['default_outbound'], unique=True,
                    sqlite_where=sa.text('default_outbound'), postgresql_where=sa.text('default_outbound'))

    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outbound_number_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_employees_outbound_number_id'), ['outbound_number_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_employees_outbound_number_id_numbers'), 'numbers',
                                    ['outbound_number_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_employees_outbound_number_id_numbers'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_employees_outbound_number_id'))
        batch_op.drop_column('outbound_number_id')

    op.drop_index('ix_numbers_default_outbound', table_name='numbers')
    with op.batch_alter_table('numbers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trunk_host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('trunk_port', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trunk_username', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('trunk_password', sa.String(length=200), nullable=True))

    _copy_trunks_back_to_numbers()

    with op.batch_alter_table('numbers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_numbers_trunk_id_trunks'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_numbers_trunk_id'))
        batch_op.drop_column('default_outbound')
        batch_op.drop_column('trunk_id')

    op.drop_table('trunks')


def _unique_name(base: str, taken: set[str]) -> str:
    name, copy = base, 1
    while name in taken:
        copy += 1
        name = f'{base} ({copy})'
    taken.add(name)
    return name


def _move_number_trunks_to_trunks() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_NUMBERS.c.id, _NUMBERS.c.kind, _NUMBERS.c.trunk_host, _NUMBERS.c.trunk_port,
                  _NUMBERS.c.trunk_username, _NUMBERS.c.trunk_password)
        .where(_NUMBERS.c.trunk_host.is_not(None), _NUMBERS.c.trunk_host != '')
        .order_by(_NUMBERS.c.id)
    ).all()
    trunk_of: dict[tuple[str, int, str | None, str | None], int] = {}
    names: set[str] = set()
    now = datetime.now(UTC)
    for number_id, kind, host, port, username, password in rows:
        key = (host, port or 5060, username or None, password or None)
        if key not in trunk_of:
            trunk_of[key] = connection.execute(sa.insert(_TRUNKS).values(
                name=_unique_name(f'trunk {key[0]}:{key[1]}', names),
                kind='pbx' if kind == 'sip_pbx' else 'provider', host=key[0], port=key[1],
                trust='registration' if key[2] else 'source', username=key[2], secret=key[3],
                deny_patterns=[], created_at=now, updated_at=now,
            ).returning(_TRUNKS.c.id)).scalar_one()
        connection.execute(sa.update(_NUMBERS).where(_NUMBERS.c.id == number_id).values(trunk_id=trunk_of[key]))


def _copy_trunks_back_to_numbers() -> None:
    connection = op.get_bind()
    trunks = connection.execute(
        sa.select(_TRUNKS.c.id, _TRUNKS.c.host, _TRUNKS.c.port, _TRUNKS.c.username, _TRUNKS.c.secret)
    ).all()
    for trunk_id, host, port, username, secret in trunks:
        connection.execute(sa.update(_NUMBERS).where(_NUMBERS.c.trunk_id == trunk_id).values(
            trunk_host=host, trunk_port=port, trunk_username=username, trunk_password=secret))
