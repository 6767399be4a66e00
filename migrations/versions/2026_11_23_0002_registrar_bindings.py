"""Registrar bindings survive a restart: one row per AOR + Contact, times in wall-clock epoch seconds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:39:41.993735
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('registrar_bindings',
    sa.Column('aor', sa.String(length=255), nullable=False),
    sa.Column('contact', sa.String(length=1024), nullable=False),
    sa.Column('expires_at', sa.Double(), nullable=False),
    sa.Column('call_id', sa.String(length=1024), nullable=False),
    sa.Column('cseq', sa.BigInteger(), nullable=False),
    sa.Column('source_transport', sa.String(length=8), nullable=False),
    sa.Column('source_host', sa.String(length=255), nullable=False),
    sa.Column('source_port', sa.Integer(), nullable=False),
    sa.Column('registered_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('aor', 'contact', name=op.f('pk_registrar_bindings'))
    )
    op.create_index(op.f('ix_registrar_bindings_expires_at'), 'registrar_bindings', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_registrar_bindings_expires_at'), table_name='registrar_bindings')
    op.drop_table('registrar_bindings')
