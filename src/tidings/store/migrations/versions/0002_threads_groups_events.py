"""threads, digests, inbound events, acks, silences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:01:59.780410
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('integration', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.Column('delivery_key', sa.String(length=300), nullable=False, comment="the sender's delivery id, for dedup"),
    sa.Column('received_at', sa.Float(), nullable=False),
    sa.Column('content_type', sa.String(length=200), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', sa.Float(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('processed_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_due', ['next_attempt_at'], unique=False, sqlite_where=sa.text("status IN ('received', 'processing')"), postgresql_where=sa.text("status IN ('received', 'processing')"))
        batch_op.create_index('ix_events_integration', ['integration', 'received_at'], unique=False)
        batch_op.create_index('ix_events_status', ['status', 'received_at'], unique=False)
        batch_op.create_index('ux_events_delivery', ['integration', 'delivery_key'], unique=True)

    op.create_table('groups',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('route', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False, comment='sha256 of the group_by label values'),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('flush_at', sa.Float(), nullable=True, comment='when the next digest is due; NULL when none is'),
    sa.Column('last_flush_at', sa.Float(), nullable=True),
    sa.Column('pending', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('total', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('firing', sa.Boolean(), server_default=sa.text('(true)'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.create_index('ix_groups_flush', ['flush_at'], unique=False)
        batch_op.create_index('ux_groups_route_key', ['route', 'key'], unique=True)

    op.create_table('silences',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('matchers', sa.JSON(), nullable=False, comment='label -> value every silenced message carries'),
    sa.Column('until', sa.Float(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.create_index('ix_silences_until', ['until'], unique=False)

    op.create_table('threads',
    sa.Column('integration', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False, comment='sha256 of thread_key'),
    sa.Column('thread_key', sa.Text(), nullable=False),
    sa.Column('ref', sa.JSON(), nullable=False, comment='where the channel keeps the thread: Slack channel + ts...'),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('resolved_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('integration', 'key')
    )
    op.create_table('acks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=True),
    sa.Column('thread_key', sa.String(length=500), nullable=True),
    sa.Column('integration', sa.String(length=100), nullable=True),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('via', sa.String(length=40), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('acks', schema=None) as batch_op:
        batch_op.create_index('ix_acks_message', ['message_id'], unique=False)

    op.create_table('group_members',
    sa.Column('group_id', sa.String(length=36), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('flushed_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'message_id')
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index('ix_group_members_pending', ['group_id', 'flushed_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index('ix_group_members_pending')

    op.drop_table('group_members')
    with op.batch_alter_table('acks', schema=None) as batch_op:
        batch_op.drop_index('ix_acks_message')

    op.drop_table('acks')
    op.drop_table('threads')
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.drop_index('ix_silences_until')

    op.drop_table('silences')
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_index('ux_groups_route_key')
        batch_op.drop_index('ix_groups_flush')

    op.drop_table('groups')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ux_events_delivery')
        batch_op.drop_index('ix_events_status')
        batch_op.drop_index('ix_events_integration')
        batch_op.drop_index('ix_events_due', sqlite_where=sa.text("status IN ('received', 'processing')"), postgresql_where=sa.text("status IN ('received', 'processing')"))

    op.drop_table('events')
