"""Composition columns: dependencies, chain step, throttling and uniqueness (J6-J10).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('job_executions') as batch:
        batch.add_column(sa.Column('depends_on', _JSON, nullable=True))
        batch.add_column(sa.Column('chain_step', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('throttled_until', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('unique_key', sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table('job_executions') as batch:
        batch.drop_column('unique_key')
        batch.drop_column('throttled_until')
        batch.drop_column('chain_step')
        batch.drop_column('depends_on')
