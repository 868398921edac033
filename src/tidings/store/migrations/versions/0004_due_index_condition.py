"""the due index's condition as OR-ed equalities

SQLite evaluates a partial index's WHERE for every row written; ``status IN (a, b, c)`` made it
build and clear a temporary b-tree each time (three times per delivered message), OR-ed equalities
are plain comparisons. Same rows, same index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OLD = "status IN ('pending', 'retrying', 'sending')"
NEW = "status = 'pending' OR status = 'retrying' OR status = 'sending'"
COLUMNS = ['priority', 'created_at', 'next_attempt_at']


def _recreate(where: str) -> None:
    op.drop_index('ix_deliveries_due', table_name='deliveries')
    op.create_index('ix_deliveries_due', 'deliveries', COLUMNS, unique=False,
                    sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    _recreate(NEW)


def downgrade() -> None:
    _recreate(OLD)
