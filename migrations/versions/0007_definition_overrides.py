"""Per-tenant job definition overrides (J3, U6): unique per (job_class, tenant_id).

A tenant's admin editing a class writes a row of that tenant; global rows (tenant_id NULL)
stay one per class through a partial unique index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 20:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

#: 0001 created the unique constraint on job_class without a name; this names it on SQLite.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_GLOBAL_ONLY = sa.text('tenant_id IS NULL')


def _old_unique_name():
    if op.get_bind().dialect.name == 'postgresql':
        return 'job_definitions_job_class_key'
    return 'uq_job_definitions_job_class'


def upgrade():
    with op.batch_alter_table('job_definitions', naming_convention=_NAMING) as batch:
        batch.drop_constraint(_old_unique_name(), type_='unique')
        batch.create_unique_constraint('uq_job_definitions_class_tenant', ['job_class', 'tenant_id'])
        batch.create_index(
            'uq_job_definitions_global_class', ['job_class'], unique=True,
            sqlite_where=_GLOBAL_ONLY, postgresql_where=_GLOBAL_ONLY,
        )


def downgrade():
    op.execute("DELETE FROM job_definitions WHERE tenant_id IS NOT NULL")
    with op.batch_alter_table('job_definitions', naming_convention=_NAMING) as batch:
        batch.drop_index('uq_job_definitions_global_class')
        batch.drop_constraint('uq_job_definitions_class_tenant', type_='unique')
        batch.create_unique_constraint(_old_unique_name(), ['job_class'])
