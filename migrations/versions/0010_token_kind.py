"""API token kinds: `api` (the REST API and its tenant's /metrics) or `metrics` (every
tenant's /metrics and nothing else). Existing tokens are `api` tokens.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='api'))


def downgrade():
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('kind')
