"""indexes the hot path doesn't pay for; reads that don't scan the history; retention

The delivered path (inserted as sending, updated to delivered) no longer maintains a full index on
status, nor one on messages.created_at (unused: ids are time-ordered). Listing by integration,
health, latency and error queries read (integration, id) and two partial indexes instead of
sorting an integration's whole history. Deleting old messages (retention) finds their digest
memberships by message.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

ERRORS_SQL = "last_error IS NOT NULL AND status <> 'suppressed'"
HELD_SQL = "status = 'pending' OR status = 'retrying' OR status = 'dead' OR status = 'suppressed' OR status = 'grouped'"


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_created')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_status')
        batch_op.drop_index('ix_deliveries_integration')
        batch_op.create_index('ix_deliveries_integration_id', ['integration', 'id'], unique=False)
        batch_op.create_index('ix_deliveries_held', ['status', 'id'], unique=False,
                              sqlite_where=sa.text(HELD_SQL), postgresql_where=sa.text(HELD_SQL))
        batch_op.create_index('ix_deliveries_errors', ['integration', 'updated_at'], unique=False,
                              sqlite_where=sa.text(ERRORS_SQL), postgresql_where=sa.text(ERRORS_SQL))
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index('ix_group_members_message', ['message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index('ix_group_members_message')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_errors')
        batch_op.drop_index('ix_deliveries_held')
        batch_op.drop_index('ix_deliveries_integration_id')
        batch_op.create_index('ix_deliveries_integration', ['integration', 'created_at'], unique=False)
        batch_op.create_index('ix_deliveries_status', ['status', 'created_at'], unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_created', ['created_at'], unique=False)
