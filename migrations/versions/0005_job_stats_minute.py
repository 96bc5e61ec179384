"""Per-minute aggregates of finished executions (M1, M6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:35:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_BUCKETS = 14


def upgrade():
    counters = [
        sa.Column(name, sa.Integer(), nullable=False, server_default='0')
        for name in ('completed', 'failed', 'cancelled', 'runtime_count')
    ]
    op.create_table('job_stats_minute',
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('queue', sa.String(length=100), nullable=False),
    sa.Column('job_class', sa.String(length=200), nullable=False),
    *counters,
    sa.Column('runtime_sum_ms', sa.BigInteger(), nullable=False, server_default='0'),
    sa.Column('runtime_max_ms', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('memory_count', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('memory_sum_mb', sa.Float(), nullable=False, server_default='0'),
    *[sa.Column(f'b{n}', sa.Integer(), nullable=False, server_default='0') for n in range(_BUCKETS)],
    sa.PrimaryKeyConstraint('minute', 'tenant_id', 'queue', 'job_class')
    )
    op.create_index('ix_stats_queue_minute', 'job_stats_minute', ['queue', 'minute'], unique=False)
    op.create_index('ix_stats_class_minute', 'job_stats_minute', ['job_class', 'minute'], unique=False)


def downgrade():
    op.drop_index('ix_stats_class_minute', table_name='job_stats_minute')
    op.drop_index('ix_stats_queue_minute', table_name='job_stats_minute')
    op.drop_table('job_stats_minute')
