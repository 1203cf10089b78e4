"""Baseline: the schema of the last release without migrations (4 Dec 2026), table by table.

Revision ID: 0001
Revises: 
Created: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailrouter.store

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('collisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer', sa.String(length=320), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('rep', sa.String(length=100), nullable=False),
    sa.Column('at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('message_id', sa.String(length=500), nullable=False),
    sa.Column('notified', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('collisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_collisions_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_collisions_customer'), ['customer'], unique=False)
        batch_op.create_index(batch_op.f('ix_collisions_rep'), ['rep'], unique=False)

    op.create_table('customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company', sa.String(length=300), nullable=False),
    sa.Column('company_key', sa.String(length=300), nullable=False),
    sa.Column('contact_name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('owner', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('first_seen', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('last_inquiry', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('last_contact', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('owner_since', mailrouter.store.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customers_company_key'), ['company_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_customers_owner'), ['owner'], unique=False)

    op.create_table('digests_sent',
    sa.Column('supervisor', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('period_end', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('queued_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('supervisor', 'kind', 'period_end')
    )
    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=False),
    sa.Column('uid', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=500), nullable=False),
    sa.Column('raw_sha256', sa.String(length=64), nullable=False),
    sa.Column('content_key', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=True),
    sa.Column('rep', sa.String(length=100), nullable=True),
    sa.Column('team', sa.String(length=100), nullable=True),
    sa.Column('folder', sa.String(length=500), nullable=False),
    sa.Column('keywords', sa.String(length=500), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('products', sa.String(length=500), nullable=False),
    sa.Column('forward_message_id', sa.String(length=500), nullable=True),
    sa.Column('duplicate_of', sa.Integer(), nullable=True),
    sa.Column('received_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('decided_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('sent_at', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('filed_at', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('file_attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['duplicate_of'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mailbox', 'source', 'uidvalidity', 'uid', name='uq_message_location')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_content_key'), ['content_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_raw_sha256'), ['raw_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_rep'), ['rep'], unique=False)
        batch_op.create_index('ix_messages_state', ['mailbox', 'state'], unique=False)

    op.create_table('rep_status',
    sa.Column('rep', sa.String(length=100), nullable=False),
    sa.Column('away_until', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('rep')
    )
    op.create_table('sent_cursors',
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=False),
    sa.Column('last_uid', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('source')
    )
    op.create_table('team_cursor',
    sa.Column('team', sa.String(length=100), nullable=False),
    sa.Column('last_rep', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('team')
    )
    op.create_table('watched_folders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('first_seen_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=False),
    sa.Column('adopted', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mailbox', 'source', name='uq_watched_folder')
    )
    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message', sa.Integer(), nullable=False),
    sa.Column('rep', sa.String(length=100), nullable=False),
    sa.Column('team', sa.String(length=100), nullable=True),
    sa.Column('customer', sa.String(length=320), nullable=False),
    sa.Column('assigned_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('how', sa.String(length=20), nullable=False),
    sa.Column('due_at', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('ladder', sa.String(length=50), nullable=False),
    sa.Column('forward_message_id', sa.String(length=500), nullable=True),
    sa.Column('first_reply_at', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('reply_message_id', sa.String(length=500), nullable=True),
    sa.Column('replied_by', sa.String(length=100), nullable=True),
    sa.Column('reply_seconds', sa.Double(), nullable=True),
    sa.Column('reply_business_seconds', sa.Double(), nullable=True),
    sa.Column('ended_at', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('end_reason', sa.String(length=30), nullable=True),
    sa.Column('reassigned_from', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['message'], ['messages.id'], ),
    sa.ForeignKeyConstraint(['reassigned_from'], ['assignments.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_assigned_at'), ['assigned_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_customer'), ['customer'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_forward_message_id'), ['forward_message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_message'), ['message'], unique=False)
        batch_op.create_index('ix_assignments_open', ['first_reply_at', 'ended_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_rep'), ['rep'], unique=False)

    op.create_table('customer_domains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('domain')
    )
    with op.batch_alter_table('customer_domains', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_domains_customer_id'), ['customer_id'], unique=False)

    op.create_table('customer_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    with op.batch_alter_table('customer_emails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_emails_customer_id'), ['customer_id'], unique=False)

    op.create_table('customer_inquiries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('message_row', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.String(length=500), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('rep', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('customer_inquiries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_inquiries_customer_id'), ['customer_id'], unique=False)

    op.create_table('customer_owner_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('from_rep', sa.String(length=100), nullable=True),
    sa.Column('to_rep', sa.String(length=100), nullable=True),
    sa.Column('at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('customer_owner_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_owner_history_customer_id'), ['customer_id'], unique=False)

    op.create_table('customer_phones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('e164', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'e164', name='uq_customer_phone')
    )
    with op.batch_alter_table('customer_phones', schema=None) as batch_op:
        batch_op.create_index('ix_customer_phones_e164', ['e164'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('message', sa.Integer(), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('deadline', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('tail', sa.LargeBinary(), nullable=True),
    sa.Column('spool_path', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['message'], ['messages.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['mailbox', 'status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_message'), ['message'], unique=False)

    op.create_table('sla_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=50), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('due_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('done_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['assignment'], ['assignments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('assignment', 'step', name='uq_sla_step')
    )
    with op.batch_alter_table('sla_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_steps_assignment'), ['assignment'], unique=False)



def downgrade() -> None:
    # Below the baseline there is no mailrouter schema; dropping every table is never what a
    # downgrade should do. Restore the copy kept before an upgrade instead.
    raise NotImplementedError("the baseline revision is not downgraded")
