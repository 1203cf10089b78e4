"""add assignments.suspect_reply_to (issue 14 item 7: a reply to a suspect Reply-To stops no clock)

Revision ID: 0003
Revises: 0002
Created: 2026-12-04 16:12:41.538691
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspect_reply_to', sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('suspect_reply_to')
