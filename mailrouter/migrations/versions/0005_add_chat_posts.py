"""add chat_posts (issue 15 item 3)

Chat notices waiting for their channel's batch post were held in memory only: a daemon killed
inside the minute lost them. They are rows now, deleted once posted, drained at start.

Revision ID: 0005
Revises: 0004
Created: 2026-12-04 19:31:45.768597
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailrouter.store

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=100), nullable=False),
    sa.Column('notice', sa.Text(), nullable=False),
    sa.Column('mention', sa.String(length=200), nullable=True),
    sa.Column('queued_at', mailrouter.store.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('chat_posts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_posts_target'), ['target'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chat_posts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_posts_target'))

    op.drop_table('chat_posts')
