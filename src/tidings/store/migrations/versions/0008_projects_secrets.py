"""projects own messages, events and silences; secrets carry who made and rotated them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_OWNED = ('messages', 'events', 'silences')


def upgrade() -> None:
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('project', sa.String(length=64), server_default='default', nullable=False))
    op.create_index('ix_messages_project', 'messages', ['project', 'created_at'])
    op.create_index('ix_events_project', 'events', ['project', 'received_at'])
    with op.batch_alter_table('secrets') as batch:
        batch.add_column(sa.Column('created_by', sa.String(length=320), nullable=True))
        batch.add_column(sa.Column('rotated_at', sa.Float(), nullable=True))
        batch.add_column(sa.Column('rotated_by', sa.String(length=320), nullable=True))
        batch.add_column(sa.Column('last_used_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('secrets') as batch:
        for column in ('last_used_at', 'rotated_by', 'rotated_at', 'created_by'):
            batch.drop_column(column)
    op.drop_index('ix_events_project', 'events')
    op.drop_index('ix_messages_project', 'messages')
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('project')
