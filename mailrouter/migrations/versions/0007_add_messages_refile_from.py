"""add messages.refile_from: a filed copy's move to follow its new owner, until it is done (issue 11)

The ladder recorded a reassigned or pooled copy's new folder, then moved it once, in memory: a
move cut off (a crash, a dropped connection) left the copy in the old folder for good. Now the
row says where the copy was until the mailbox loop's filer has moved it.

Revision ID: 0007
Revises: 0006
Created: 2026-12-04 19:25:52.844720
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refile_from', sa.String(length=500), nullable=True))
        batch_op.create_index('ix_messages_refile', ['mailbox', 'refile_from'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_refile')
        batch_op.drop_column('refile_from')

