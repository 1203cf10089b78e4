"""leases: who works each mailbox and reply source

Revision ID: 0002
Revises: 0001
Created: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailrouter.store

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('holder', sa.String(length=300), nullable=False),
    sa.Column('acquired_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.Column('renewed_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('leases')
