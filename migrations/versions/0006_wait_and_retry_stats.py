"""Wait-time histogram and retry counts in the per-minute aggregates (M1, M4, M6).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 20:20:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_BUCKETS = 14


def _columns():
    return [
        sa.Column('retried', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('wait_count', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('wait_sum_ms', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('wait_max_ms', sa.BigInteger(), nullable=False, server_default='0'),
        *[sa.Column(f'w{n}', sa.Integer(), nullable=False, server_default='0') for n in range(_BUCKETS)],
    ]


def upgrade():
    with op.batch_alter_table('job_stats_minute') as batch:
        for column in _columns():
            batch.add_column(column)


def downgrade():
    with op.batch_alter_table('job_stats_minute') as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
