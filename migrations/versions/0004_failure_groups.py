"""Failure groups and execution fingerprints (F4).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    op.create_table('failure_groups',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('exception_type', sa.String(length=200), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('frames', _JSON, nullable=True),
    sa.Column('job_classes', _JSON, nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sample_job_ids', _JSON, nullable=True),
    sa.Column('last_message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('tenant_id', 'fingerprint')
    )
    with op.batch_alter_table('failure_groups', schema=None) as batch_op:
        batch_op.create_index('ix_failure_group_tenant_last_seen', ['tenant_id', 'last_seen_at', 'fingerprint'], unique=False)
    with op.batch_alter_table('job_executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_exec_tenant_fingerprint', ['tenant_id', 'fingerprint'], unique=False)


def downgrade():
    with op.batch_alter_table('job_executions', schema=None) as batch_op:
        batch_op.drop_index('ix_exec_tenant_fingerprint')
        batch_op.drop_column('fingerprint')
    with op.batch_alter_table('failure_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_failure_group_tenant_last_seen')
    op.drop_table('failure_groups')
