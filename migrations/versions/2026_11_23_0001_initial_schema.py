"""Initial schema: every table of issue #3, with the seed rows.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 13:07:19.577181
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('decisions',
    sa.Column('interaction_key', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('interaction_key', name=op.f('pk_decisions'))
    )
    op.create_table('employees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('extension', sa.String(length=32), nullable=True),
    sa.Column('is_admin', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('can_manage_numbers', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employees')),
    sa.UniqueConstraint('extension', name=op.f('uq_employees_extension'))
    )
    op.create_table('exception_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('normalized', sa.String(length=320), nullable=False),
    sa.CheckConstraint("kind IN ('phone', 'email')", name=op.f('ck_exception_entries_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exception_entries')),
    sa.UniqueConstraint('normalized', 'kind', name=op.f('uq_exception_entries_normalized_kind'))
    )
    op.create_table('idempotency_keys',
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_idempotency_keys'))
    )
    op.create_table('item_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_type', sa.String(length=16), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('normalized', sa.String(length=320), nullable=False),
    sa.CheckConstraint("item_type IN ('lead', 'contact', 'company')", name=op.f('ck_item_emails_item_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_emails'))
    )
    with op.batch_alter_table('item_emails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_emails_item_type_item_id'), ['item_type', 'item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_item_emails_normalized'), ['normalized'], unique=False)

    op.create_table('item_phones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_type', sa.String(length=16), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('normalized', sa.String(length=32), nullable=False),
    sa.CheckConstraint("item_type IN ('lead', 'contact', 'company')", name=op.f('ck_item_phones_item_type')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item_phones'))
    )
    with op.batch_alter_table('item_phones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_phones_item_type_item_id'), ['item_type', 'item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_item_phones_normalized'), ['normalized'], unique=False)

    op.create_table('outbox_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('interaction_key', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name=op.f('ck_outbox_entries_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_entries')),
    sa.UniqueConstraint('interaction_key', 'seq', name=op.f('uq_outbox_entries_interaction_key_seq'))
    )
    with op.batch_alter_table('outbox_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_entries_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)

    op.create_table('pipelines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('is_default', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipelines')),
    sa.UniqueConstraint('name', name=op.f('uq_pipelines_name'))
    )
    op.create_table('queue_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('strategy', sa.String(length=32), server_default='sequential', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_groups')),
    sa.UniqueConstraint('name', name=op.f('uq_queue_groups_name'))
    )
    op.create_table('sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('standard', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources')),
    sa.UniqueConstraint('code', name=op.f('uq_sources_code'))
    )
    op.create_table('activities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('interaction_key', sa.String(length=255), nullable=True),
    sa.Column('responsible_id', sa.Integer(), nullable=True),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.CheckConstraint("direction IN ('inbound', 'outbound')", name=op.f('ck_activities_direction')),
    sa.CheckConstraint("kind IN ('call', 'email')", name=op.f('ck_activities_kind')),
    sa.ForeignKeyConstraint(['responsible_id'], ['employees.id'], name=op.f('fk_activities_responsible_id_employees'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities'))
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activities_interaction_key'), ['interaction_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_activities_responsible_id'), ['responsible_id'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_api_tokens_employee_id_employees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_employee_id'), ['employee_id'], unique=False)

    op.create_table('crm_settings',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('mode', sa.String(length=16), server_default='classic', nullable=False),
    sa.Column('deal_pipeline_id', sa.Integer(), nullable=True),
    sa.Column('deal_creation_mode', sa.String(length=16), server_default='contact', nullable=False),
    sa.Column('repeat_sales', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('legacy_lead_mode', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('allow_email_to_any_address', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('any_address_creates', sa.String(length=16), server_default='lead', nullable=False),
    sa.CheckConstraint("any_address_creates IN ('lead', 'contact')", name=op.f('ck_crm_settings_any_address_creates')),
    sa.CheckConstraint("deal_creation_mode IN ('contact', 'company')", name=op.f('ck_crm_settings_deal_creation_mode')),
    sa.CheckConstraint("mode IN ('classic', 'simple')", name=op.f('ck_crm_settings_mode')),
    sa.CheckConstraint('id = 1', name=op.f('ck_crm_settings_single_row')),
    sa.ForeignKeyConstraint(['deal_pipeline_id'], ['pipelines.id'], name=op.f('fk_crm_settings_deal_pipeline_id_pipelines'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_settings'))
    )
    op.create_table('employee_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('normalized', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_employee_emails_employee_id_employees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employee_emails'))
    )
    with op.batch_alter_table('employee_emails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_employee_emails_employee_id'), ['employee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_employee_emails_normalized'), ['normalized'], unique=False)

    op.create_table('employee_phones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('normalized', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_employee_phones_employee_id_employees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employee_phones'))
    )
    with op.batch_alter_table('employee_phones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_employee_phones_employee_id'), ['employee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_employee_phones_normalized'), ['normalized'], unique=False)

    op.create_table('employee_rights',
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('item_type', sa.String(length=16), nullable=False),
    sa.Column('view', sa.String(length=8), nullable=False),
    sa.Column('edit', sa.String(length=8), nullable=False),
    sa.CheckConstraint("edit IN ('none', 'own', 'all')", name=op.f('ck_employee_rights_edit')),
    sa.CheckConstraint("item_type IN ('lead', 'contact', 'company', 'deal')", name=op.f('ck_employee_rights_item_type')),
    sa.CheckConstraint("view IN ('none', 'own', 'all')", name=op.f('ck_employee_rights_view')),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_employee_rights_employee_id_employees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('employee_id', 'item_type', name=op.f('pk_employee_rights'))
    )
    op.create_table('leads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('responsible_id', sa.Integer(), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('converted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('interaction_key', sa.String(length=255), nullable=True),
    sa.CheckConstraint("status IN ('active', 'converted', 'closed')", name=op.f('ck_leads_status')),
    sa.ForeignKeyConstraint(['responsible_id'], ['employees.id'], name=op.f('fk_leads_responsible_id_employees'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_leads_source_id_sources'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads'))
    )
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leads_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_leads_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_leads_interaction_key'), ['interaction_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_leads_responsible_id'), ['responsible_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_leads_status'), ['status'], unique=False)

    op.create_table('numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), server_default='rented', nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('default_region', sa.String(length=2), nullable=False),
    sa.Column('queue_group_id', sa.Integer(), nullable=True),
    sa.Column('trunk_host', sa.String(length=255), nullable=True),
    sa.Column('trunk_port', sa.Integer(), nullable=True),
    sa.Column('trunk_username', sa.String(length=200), nullable=True),
    sa.Column('trunk_password', sa.String(length=200), nullable=True),
    sa.Column('unknown_caller_action', sa.String(length=16), server_default='auto_lead', nullable=False),
    sa.Column('create_for', sa.String(length=16), server_default='all', nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('route_known_to_responsible', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('change_responsible_on_transfer', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("create_for IN ('incoming', 'outgoing', 'all')", name=op.f('ck_numbers_create_for')),
    sa.CheckConstraint("kind IN ('rented', 'sip_pbx')", name=op.f('ck_numbers_kind')),
    sa.CheckConstraint("unknown_caller_action IN ('auto_lead', 'offer_in_card')", name=op.f('ck_numbers_unknown_caller_action')),
    sa.ForeignKeyConstraint(['queue_group_id'], ['queue_groups.id'], name=op.f('fk_numbers_queue_group_id_queue_groups'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_numbers_source_id_sources'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_numbers')),
    sa.UniqueConstraint('number', name=op.f('uq_numbers_number'))
    )
    with op.batch_alter_table('numbers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_numbers_queue_group_id'), ['queue_group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_numbers_source_id'), ['source_id'], unique=False)

    op.create_table('queue_members',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_queue_members_employee_id_employees'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['queue_groups.id'], name=op.f('fk_queue_members_group_id_queue_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'employee_id', name=op.f('pk_queue_members'))
    )
    with op.batch_alter_table('queue_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queue_members_employee_id'), ['employee_id'], unique=False)

    op.create_table('timeline_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_type', sa.String(length=16), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("item_type IN ('lead', 'contact', 'company', 'deal')", name=op.f('ck_timeline_entries_item_type')),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_timeline_entries_employee_id_employees'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timeline_entries'))
    )
    with op.batch_alter_table('timeline_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timeline_entries_item_type_item_id'), ['item_type', 'item_id'], unique=False)

    op.create_table('activity_bindings',
    sa.Column('activity_id', sa.Integer(), nullable=False),
    sa.Column('item_type', sa.String(length=16), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("item_type IN ('lead', 'contact', 'company', 'deal')", name=op.f('ck_activity_bindings_item_type')),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_activity_bindings_activity_id_activities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', 'item_type', 'item_id', name=op.f('pk_activity_bindings'))
    )
    with op.batch_alter_table('activity_bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activity_bindings_item_type_item_id'), ['item_type', 'item_id'], unique=False)

    op.create_table('companies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('responsible_id', sa.Integer(), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interaction_key', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_companies_lead_id_leads'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['responsible_id'], ['employees.id'], name=op.f('fk_companies_responsible_id_employees'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_companies_source_id_sources'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies'))
    )
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_companies_interaction_key'), ['interaction_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_companies_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_companies_responsible_id'), ['responsible_id'], unique=False)

    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('responsible_id', sa.Integer(), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interaction_key', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_contacts_company_id_companies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_contacts_lead_id_leads'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['responsible_id'], ['employees.id'], name=op.f('fk_contacts_responsible_id_employees'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_contacts_source_id_sources'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_interaction_key'), ['interaction_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_responsible_id'), ['responsible_id'], unique=False)

    # leads and contacts/companies reference each other: the leads side is added once both exist.
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_leads_contact_id_contacts'), 'contacts', ['contact_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_leads_company_id_companies'), 'companies', ['company_id'], ['id'],
                                    ondelete='SET NULL')

    op.create_table('company_contacts',
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_company_contacts_company_id_companies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_company_contacts_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('company_id', 'contact_id', name=op.f('pk_company_contacts'))
    )
    with op.batch_alter_table('company_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_company_contacts_contact_id'), ['contact_id'], unique=False)

    op.create_table('deals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=64), server_default='NEW', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('responsible_id', sa.Integer(), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('interaction_key', sa.String(length=255), nullable=True),
    sa.CheckConstraint("status IN ('active', 'closed')", name=op.f('ck_deals_status')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_deals_company_id_companies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_deals_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_deals_lead_id_leads'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_deals_pipeline_id_pipelines'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['responsible_id'], ['employees.id'], name=op.f('fk_deals_responsible_id_employees'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_deals_source_id_sources'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deals'))
    )
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deals_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_interaction_key'), ['interaction_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_pipeline_id'), ['pipeline_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_responsible_id'), ['responsible_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_status'), ['status'], unique=False)

    _seed()


def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_leads_company_id_companies'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_leads_contact_id_contacts'), type_='foreignkey')
    # Children before parents; a table's indexes go with it.
    for table in (
        'deals',
        'company_contacts',
        'contacts',
        'companies',
        'activity_bindings',
        'timeline_entries',
        'queue_members',
        'numbers',
        'leads',
        'employee_rights',
        'employee_phones',
        'employee_emails',
        'crm_settings',
        'api_tokens',
        'activities',
        'sources',
        'queue_groups',
        'pipelines',
        'outbox_entries',
        'item_phones',
        'item_emails',
        'idempotency_keys',
        'exception_entries',
        'employees',
        'decisions',
    ):
        op.drop_table(table)


def _seed() -> None:
    """The rows every installation starts with: the General pipeline, the standard sources (SPEC T6)
    and the single CRM settings row (classic mode, deals with a contact, every option off)."""
    pipelines = sa.table('pipelines', sa.column('id', sa.Integer), sa.column('name', sa.String),
                         sa.column('is_default', sa.Boolean))
    op.bulk_insert(pipelines, [{'id': 1, 'name': 'General', 'is_default': True}])
    sources = sa.table('sources', sa.column('id', sa.Integer), sa.column('code', sa.String),
                       sa.column('name', sa.String), sa.column('standard', sa.Boolean))
    op.bulk_insert(sources, [
        {'id': 1, 'code': 'CALL', 'name': 'Call', 'standard': True},
        {'id': 2, 'code': 'EMAIL', 'name': 'E-mail', 'standard': True},
        {'id': 3, 'code': 'WEB', 'name': 'Website', 'standard': True},
        {'id': 4, 'code': 'OTHER', 'name': 'Other', 'standard': True},
    ])
    crm_settings = sa.table(
        'crm_settings', sa.column('id', sa.Integer), sa.column('mode', sa.String),
        sa.column('deal_pipeline_id', sa.Integer), sa.column('deal_creation_mode', sa.String),
        sa.column('repeat_sales', sa.Boolean), sa.column('legacy_lead_mode', sa.Boolean),
        sa.column('allow_email_to_any_address', sa.Boolean), sa.column('any_address_creates', sa.String),
    )
    op.bulk_insert(crm_settings, [{
        'id': 1, 'mode': 'classic', 'deal_pipeline_id': None, 'deal_creation_mode': 'contact',
        'repeat_sales': False, 'legacy_lead_mode': False, 'allow_email_to_any_address': False,
        'any_address_creates': 'lead',
    }])
    # Explicit ids above do not advance PostgreSQL's sequences: move them past the seeded rows.
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('pipelines', 'sources'):
            op.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
