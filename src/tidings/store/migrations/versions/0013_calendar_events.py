"""calendar_events: events pushed to Google Calendar and Outlook, per calendar integration and task

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 10:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calendar_events',
        sa.Column('integration', sa.String(length=100), nullable=False, comment='the calendar integration'),
        sa.Column('task_id', sa.String(length=36), nullable=False,
                  comment='the task (no foreign key: it may be deleted already)'),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False,
                  comment='creating (a create was sent, its answer not stored yet), present, missing (reconcile found'
                          ' it gone: push again), deleted'),
        sa.Column('remote_id', sa.String(length=1024), nullable=True,
                  comment="the event's id in the calendar; NULL while a Graph create is open"),
        sa.Column('etag', sa.String(length=200), nullable=True,
                  comment="the event's etag as last written or read, for If-Match"),
        sa.Column('written_hash', sa.String(length=64), nullable=True,
                  comment='SHA-256 of the event as we last wrote it: an unchanged task writes nothing'),
        sa.Column('creates', sa.Integer(), server_default='0', nullable=False,
                  comment='events made for this task so far (a new one after a delete gets a new Graph transactionId)'),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('integration', 'task_id'),
    )
    op.create_index('ix_calendar_events_remote', 'calendar_events', ['integration', 'remote_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_calendar_events_remote', table_name='calendar_events')
    op.drop_table('calendar_events')
