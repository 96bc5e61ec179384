"""Schedule history: missed and refused fires (S4).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('schedule_events',
    sa.Column('schedule_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('tick_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_tick_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=True),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['schedule_id'], ['job_schedules.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('schedule_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_events_schedule_id'), ['schedule_id'], unique=False)


def downgrade():
    with op.batch_alter_table('schedule_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_events_schedule_id'))
    op.drop_table('schedule_events')
