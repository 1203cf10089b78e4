"""add customer_aliases; recompute customers.company_key (issue 16 item 3)

Company names gained aliases, and the key learned more legal forms (S.L. as "Sociedad
Limitada", 株式会社, 주식회사, Tbk ...) and to leave out a bracketed second name, so keys
written by earlier code are recomputed: otherwise an old customer would stop matching.

Revision ID: 0004
Revises: 0003
Created: 2026-12-04 16:22:39.448755
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_aliases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=300), nullable=False),
    sa.Column('alias_key', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'alias_key', name='uq_customer_alias')
    )
    with op.batch_alter_table('customer_aliases', schema=None) as batch_op:
        batch_op.create_index('ix_customer_aliases_alias_key', ['alias_key'], unique=False)
    _recompute_company_keys()


def _recompute_company_keys() -> None:
    from mailrouter.registry.normalise import company_key

    customers = sa.table("customers", sa.column("id", sa.Integer), sa.column("company", sa.String),
                         sa.column("company_key", sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(customers.c.id, customers.c.company, customers.c.company_key)
                        .where(customers.c.company != "")).all()
    changed = [{"i": cid, "k": company_key(name)} for cid, name, key in rows if company_key(name) != key]
    if changed:
        bind.execute(customers.update().where(customers.c.id == sa.bindparam("i"))
                     .values(company_key=sa.bindparam("k")), changed)


def downgrade() -> None:
    with op.batch_alter_table('customer_aliases', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_aliases_alias_key')

    op.drop_table('customer_aliases')
