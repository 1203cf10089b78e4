"""add connection_problems: mailboxes and reply sources not connected, for `status` (issue 17)

A dead or refusing server no longer stops the daemon's start; its loop retries while the others
run, and `status` (which reads only the database) names it, why and since when.

Revision ID: 0008
Revises: 0007
Created: 2026-12-04 22:23:00.389617
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailrouter.store

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('connection_problems',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('since', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('tried_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('holder', sa.String(length=300), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('connection_problems')
