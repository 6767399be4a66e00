"""Mail: mailboxes and who may use them, per-folder IMAP sync state, messages (stored once, with their
thread index) and outgoing mail with its SMTP status; a mailbox keeps M13's distribution turn
(last_assigned_id). Creates only its own tables: independent of 0003.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 13:43:26.918132
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('mailboxes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('imap_host', sa.String(length=255), nullable=False),
    sa.Column('imap_port', sa.Integer(), server_default='993', nullable=False),
    sa.Column('tls_mode', sa.String(length=8), server_default='tls', nullable=False),
    sa.Column('login', sa.String(length=320), nullable=False),
    sa.Column('secret', sa.String(length=1024), nullable=False),
    sa.Column('folders', sa.JSON(), nullable=False),
    sa.Column('spam_folder', sa.String(length=255), nullable=True),
    sa.Column('crm_integration', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('create_items_for_new', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('queue_group_id', sa.Integer(), nullable=True),
    sa.Column('route_known_to_responsible', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('connected_by_id', sa.Integer(), nullable=True),
    sa.Column('last_assigned_id', sa.Integer(), nullable=True),
    sa.Column('first_sync_days', sa.Integer(), server_default='30', nullable=False),
    sa.Column('smtp_host', sa.String(length=255), nullable=True),
    sa.Column('smtp_port', sa.Integer(), nullable=True),
    sa.Column('smtp_tls_mode', sa.String(length=8), server_default='starttls', nullable=False),
    sa.Column('smtp_login', sa.String(length=320), nullable=True),
    sa.Column('smtp_secret', sa.String(length=1024), nullable=True),
    sa.Column('state', sa.String(length=8), server_default='new', nullable=False),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("smtp_tls_mode IN ('tls', 'starttls', 'none')", name=op.f('ck_mailboxes_smtp_tls_mode')),
    sa.CheckConstraint("state IN ('new', 'ok', 'failing')", name=op.f('ck_mailboxes_state')),
    sa.CheckConstraint("tls_mode IN ('tls', 'starttls', 'none')", name=op.f('ck_mailboxes_tls_mode')),
    sa.ForeignKeyConstraint(['connected_by_id'], ['employees.id'], name=op.f('fk_mailboxes_connected_by_id_employees'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['last_assigned_id'], ['employees.id'], name=op.f('fk_mailboxes_last_assigned_id_employees'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['queue_group_id'], ['queue_groups.id'], name=op.f('fk_mailboxes_queue_group_id_queue_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_mailboxes_source_id_sources'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailboxes')),
    sa.UniqueConstraint('address', name=op.f('uq_mailboxes_address'))
    )
    op.create_table('mail_folder_state',
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('folder', sa.String(length=255), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('last_uid', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_mail_folder_state_mailbox_id_mailboxes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_id', 'folder', name=op.f('pk_mail_folder_state'))
    )
    op.create_table('mail_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_key', sa.String(length=255), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('thread_key', sa.String(length=255), nullable=False),
    sa.Column('in_reply_to', sa.String(length=998), nullable=True),
    sa.Column('mailbox_id', sa.Integer(), nullable=True),
    sa.Column('folder', sa.String(length=255), nullable=True),
    sa.Column('uid', sa.BigInteger(), nullable=True),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('from_address', sa.String(length=320), nullable=True),
    sa.Column('from_name', sa.String(length=300), nullable=True),
    sa.Column('to_addresses', sa.JSON(), nullable=False),
    sa.Column('cc_addresses', sa.JSON(), nullable=False),
    sa.Column('subject', sa.String(length=998), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_zone', sa.String(length=8), nullable=True),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interaction_key', sa.String(length=255), nullable=False),
    sa.Column('defects', sa.JSON(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.CheckConstraint("direction IN ('inbound', 'outbound')", name=op.f('ck_mail_messages_direction')),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_mail_messages_mailbox_id_mailboxes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_messages')),
    sa.UniqueConstraint('message_key', name=op.f('uq_mail_messages_message_key'))
    )
    with op.batch_alter_table('mail_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_messages_from_address'), ['from_address'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_messages_interaction_key'), ['interaction_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_messages_mailbox_id'), ['mailbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_messages_thread_key'), ['thread_key'], unique=False)

    op.create_table('mailbox_access',
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_mailbox_access_employee_id_employees'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_mailbox_access_mailbox_id_mailboxes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_id', 'employee_id', name=op.f('pk_mailbox_access'))
    )
    with op.batch_alter_table('mailbox_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailbox_access_employee_id'), ['employee_id'], unique=False)

    op.create_table('mail_thread_refs',
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('ref_key', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['mail_messages.id'], name=op.f('fk_mail_thread_refs_message_id_mail_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'ref_key', name=op.f('pk_mail_thread_refs'))
    )
    with op.batch_alter_table('mail_thread_refs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_thread_refs_ref_key'), ['ref_key'], unique=False)

    op.create_table('outgoing_mail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=True),
    sa.Column('item_type', sa.String(length=16), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('sender_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('smtp_reply', sa.String(length=1000), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.CheckConstraint("item_type IN ('lead', 'contact', 'company', 'deal')", name=op.f('ck_outgoing_mail_item_type')),
    sa.CheckConstraint("status IN ('queued', 'sent', 'failed')", name=op.f('ck_outgoing_mail_status')),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_outgoing_mail_mailbox_id_mailboxes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['mail_messages.id'], name=op.f('fk_outgoing_mail_message_id_mail_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sender_id'], ['employees.id'], name=op.f('fk_outgoing_mail_sender_id_employees'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outgoing_mail')),
    sa.UniqueConstraint('message_id', name=op.f('uq_outgoing_mail_message_id'))
    )


def downgrade() -> None:
    op.drop_table('outgoing_mail')
    with op.batch_alter_table('mail_thread_refs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_thread_refs_ref_key'))

    op.drop_table('mail_thread_refs')
    with op.batch_alter_table('mailbox_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mailbox_access_employee_id'))

    op.drop_table('mailbox_access')
    with op.batch_alter_table('mail_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_messages_thread_key'))
        batch_op.drop_index(batch_op.f('ix_mail_messages_mailbox_id'))
        batch_op.drop_index(batch_op.f('ix_mail_messages_interaction_key'))
        batch_op.drop_index(batch_op.f('ix_mail_messages_from_address'))

    op.drop_table('mail_messages')
    op.drop_table('mail_folder_state')
    op.drop_table('mailboxes')
