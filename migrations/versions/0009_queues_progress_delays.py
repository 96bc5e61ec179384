"""Queues that do what the seeds ask: per-queue settings, long delays, progress,
concurrency keys, Celery group membership and schedule options.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 13:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade():
    op.create_table(
        'queues',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('max_attempts', sa.Integer(), nullable=True),
        sa.Column('retry_after', sa.Integer(), nullable=True),
        sa.Column('timeout', sa.Integer(), nullable=True),
        sa.Column('encrypted', sa.Boolean(), nullable=True),
        sa.Column('weight', sa.Integer(), nullable=True),
        sa.Column('max_pending', sa.Integer(), nullable=True),
        sa.Column('updated_by', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    with op.batch_alter_table('job_executions') as batch:
        batch.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('progress', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('progress_done', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('progress_total', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('progress_message', sa.Text(), nullable=True))
        batch.add_column(sa.Column('concurrency_key', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('group_id', sa.String(length=36), nullable=True))
        batch.create_index('ix_exec_due_at', ['due_at'])
        batch.create_index('ix_exec_group', ['group_id'])
    with op.batch_alter_table('job_schedules') as batch:
        batch.add_column(sa.Column('options', _JSON, nullable=True))


def downgrade():
    with op.batch_alter_table('job_schedules') as batch:
        batch.drop_column('options')
    with op.batch_alter_table('job_executions') as batch:
        batch.drop_index('ix_exec_group')
        batch.drop_index('ix_exec_due_at')
        batch.drop_column('group_id')
        batch.drop_column('concurrency_key')
        batch.drop_column('progress_message')
        batch.drop_column('progress_total')
        batch.drop_column('progress_done')
        batch.drop_column('progress')
        batch.drop_column('due_at')
    op.drop_table('queues')
