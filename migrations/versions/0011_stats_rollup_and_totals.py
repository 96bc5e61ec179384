"""Bounded aggregates (issue 15): hourly and daily rollups of the per-minute stats, and
running totals per (tenant, queue, class) for /metrics.

The totals start from every minute row kept so far (before this revision nothing purged
them, so that is everything ever counted). Downgrading folds the hourly and daily rows
back into minute rows (one per hour or day) so the old per-minute /metrics sums lose nothing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-14 12:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_BUCKETS = 14
_SUMMED = (
    'completed', 'failed', 'cancelled', 'retried', 'runtime_count', 'runtime_sum_ms', 'memory_count',
    'memory_sum_mb', 'wait_count', 'wait_sum_ms',
    *(f'b{n}' for n in range(_BUCKETS)),
    *(f'w{n}' for n in range(_BUCKETS)),
)
_MAXED = ('runtime_max_ms', 'wait_max_ms')
_KEY = ('tenant_id', 'queue', 'job_class')


def _counters(names):
    return [
        sa.Column(name, sa.Float() if name == 'memory_sum_mb' else sa.BigInteger(), nullable=False, server_default='0')
        for name in names
    ]


def _keyed(bucket):
    columns = [sa.Column(bucket, sa.DateTime(timezone=True), nullable=False)] if bucket else []
    return [
        *columns,
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('queue', sa.String(length=100), nullable=False),
        sa.Column('job_class', sa.String(length=200), nullable=False),
    ]


def upgrade():
    for table, bucket in (('job_stats_hour', 'hour'), ('job_stats_day', 'day')):
        op.create_table(
            table,
            *_keyed(bucket),
            *_counters(_SUMMED + _MAXED),
            sa.PrimaryKeyConstraint(bucket, *_KEY),
        )
    op.create_table(
        'job_stats_total',
        *_keyed(None),
        *_counters(_SUMMED),
        sa.Column('last_minute', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY),
    )
    key = ', '.join(_KEY)
    op.execute(
        f"INSERT INTO job_stats_total ({key}, {', '.join(_SUMMED)}, last_minute) "
        f"SELECT {key}, {', '.join(f'SUM({name})' for name in _SUMMED)}, MAX(minute) "
        f"FROM job_stats_minute GROUP BY {key}"
    )


def downgrade():
    names = ', '.join(_SUMMED + _MAXED)
    adding = ', '.join(
        [f'{name} = job_stats_minute.{name} + excluded.{name}' for name in _SUMMED]
        + [
            f'{name} = CASE WHEN excluded.{name} > job_stats_minute.{name} '
            f'THEN excluded.{name} ELSE job_stats_minute.{name} END'
            for name in _MAXED
        ]
    )
    for table, bucket in (('job_stats_day', 'day'), ('job_stats_hour', 'hour')):
        # "WHERE 1 = 1": SQLite's parser needs a WHERE before ON CONFLICT in INSERT ... SELECT.
        op.execute(
            f"INSERT INTO job_stats_minute (minute, {', '.join(_KEY)}, {names}) "
            f"SELECT {bucket}, {', '.join(_KEY)}, {names} FROM {table} WHERE 1 = 1 "
            f"ON CONFLICT (minute, {', '.join(_KEY)}) DO UPDATE SET {adding}"
        )
    op.drop_table('job_stats_total')
    op.drop_table('job_stats_day')
    op.drop_table('job_stats_hour')
