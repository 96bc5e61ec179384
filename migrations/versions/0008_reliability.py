"""Truthful history (R1, R2): publish times and message shape of jobs, session generations,
idempotency keys.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:30:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade():
    with op.batch_alter_table('job_executions') as batch:
        batch.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('message', _JSON, nullable=True))
        batch.add_column(sa.Column('notes', _JSON, nullable=True))
        batch.create_index('ix_exec_live_published', ['status', 'queue', 'published_at'])
    # Jobs queued before this migration count as published when they were created.
    op.execute(
        "UPDATE job_executions SET published_at = created_at "
        "WHERE status IN ('pending', 'retrying', 'processing')"
    )
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_generation', sa.Integer(), nullable=False, server_default='0'))
    op.create_table(
        'idempotency_keys',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('endpoint', sa.String(length=100), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('resource_ids', _JSON, nullable=True),
        sa.Column('response_status', sa.Integer(), nullable=True),
        sa.Column('response_body', _JSON, nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'endpoint', 'key', name='uq_idempotency_tenant_endpoint_key'),
    )
    op.create_index('ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at'])


def downgrade():
    op.drop_index('ix_idempotency_keys_created_at', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_generation')
    with op.batch_alter_table('job_executions') as batch:
        batch.drop_index('ix_exec_live_published')
        batch.drop_column('notes')
        batch.drop_column('message')
        batch.drop_column('published_at')
