"""add strikes: a message's failed or unfinished tries, kept across restarts (issue 11)

A message that got the daemon killed (the watchdog, the OOM killer) while it was being worked
on was tried again after every restart: the record of its tries lived in memory only.

Revision ID: 0006
Revises: 0005
Created: 2026-12-04 19:18:24.443819
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailrouter.store

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('strikes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=False),
    sa.Column('uid', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('started_at', mailrouter.store.UTCDateTime(), nullable=True),
    sa.Column('alone', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mailbox', 'source', 'uidvalidity', 'uid', name='uq_strike_location')
    )


def downgrade() -> None:
    op.drop_table('strikes')
