"""recipients, groups, preferences, schedules, escalations, incidents; deliveries.recipient and reason

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.add_column(sa.Column('recipient', sa.String(length=36), nullable=True,
                                   comment='the recipient (recipients.id) this delivery addresses; NULL: the channel'))
        batch.add_column(sa.Column('reason', sa.Text(), nullable=True,
                                   comment='why this delivery exists or waits: a recipient\'s route, quiet hours, a'
                                           ' preference, an escalation step'))
    op.create_table(
        'recipients',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False, comment='the handle routes name as @name'),
        sa.Column('display_name', sa.String(length=200), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('slack_user', sa.String(length=32), nullable=True, comment='Slack user id (U…/W…): a DM through the bot'),
        sa.Column('teams_url', sa.String(length=200), nullable=True,
                  comment="a ${vault:...} reference to the person's Teams workflow URL (it is a credential)"),
        sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False, comment='IANA name'),
        sa.Column('user_id', sa.String(length=36), nullable=True,
                  comment='the tidings user this recipient is, if any (may edit their own preferences)'),
        sa.Column('quiet_hours', sa.JSON(), nullable=True,
                  comment="the person's own quiet hours (QuietHours); NULL: the project's"),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('version', sa.Integer(), server_default='1', nullable=False),
        sa.ForeignKeyConstraint(['project'], ['projects.slug'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('project', 'name', name='uq_recipients_project_name'),
    )
    op.create_index('ix_recipients_user', 'recipients', ['user_id'])
    op.create_table(
        'recipient_groups',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False, comment='routes name it as @name, like a recipient'),
        sa.Column('description', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['project'], ['projects.slug'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('project', 'name', name='uq_recipient_groups_project_name'),
    )
    op.create_table(
        'recipient_group_members',
        sa.Column('group_id', sa.String(length=36), nullable=False),
        sa.Column('recipient_id', sa.String(length=36), nullable=False),
        sa.Column('position', sa.Integer(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['group_id'], ['recipient_groups.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['recipient_id'], ['recipients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('group_id', 'recipient_id'),
    )
    op.create_index('ix_recipient_group_members_recipient', 'recipient_group_members', ['recipient_id'])
    op.create_table(
        'preferences',
        sa.Column('recipient_id', sa.String(length=36), nullable=False),
        sa.Column('topic', sa.String(length=64), nullable=False, comment="'' = any topic"),
        sa.Column('channel', sa.String(length=100), nullable=False, comment="an integration name; '' = any channel"),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('updated_by', sa.String(length=200), nullable=True,
                  comment="who set it: a user, or 'unsubscribe link'"),
        sa.ForeignKeyConstraint(['recipient_id'], ['recipients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('recipient_id', 'topic', 'channel'),
    )
    op.create_table(
        'schedules',
        sa.Column('message_id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('due_at', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False, comment='scheduled, routed, cancelled, failed'),
        sa.Column('to', sa.JSON(), nullable=True,
                  comment='the integrations (and @recipients) named at send time; NULL: the routes'),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('lease_owner', sa.String(length=64), nullable=True),
        sa.Column('lease_until', sa.Float(), nullable=True),
        sa.Column('cancelled_by', sa.String(length=200), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=True,
                  comment='why it failed (its `to` names what no longer exists)'),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('message_id'),
    )
    op.create_index('ix_schedules_due', 'schedules', ['status', 'due_at'])
    op.create_table(
        'escalations',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('message_id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('route', sa.String(length=100), nullable=False, comment='the route whose escalation policy applies'),
        sa.Column('step', sa.Integer(), nullable=False, comment='the next step to fire (0-based)'),
        sa.Column('due_at', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False, comment='waiting, stopped (acknowledged), done'),
        sa.Column('reason', sa.String(length=500), nullable=True, comment='why it stopped or ended'),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('lease_owner', sa.String(length=64), nullable=True),
        sa.Column('lease_until', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('message_id', 'route', name='uq_escalations_message_route'),
    )
    op.create_index('ix_escalations_due', 'escalations', ['status', 'due_at'])
    op.create_table(
        'incidents',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False,
                  comment='what broke: integration/NAME, inbound/NAME, sync/NAME, connection/NAME'),
        sa.Column('kind', sa.String(length=40), nullable=False,
                  comment='failing, circuit_open, dead, verification, sync, connection'),
        sa.Column('status', sa.String(length=12), nullable=False, comment='open, resolved'),
        sa.Column('detail', sa.String(length=2000), nullable=True),
        sa.Column('opened_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('notified_at', sa.Float(), nullable=True, comment='when the owners were last told it is open'),
        sa.Column('resolved_at', sa.Float(), nullable=True),
        sa.Column('count', sa.Integer(), server_default='1', nullable=False, comment='occurrences while open'),
        sa.Column('notice', sa.String(length=500), nullable=True,
                  comment='what became of the last notice: sent to whom, or why none went'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_incidents_subject', 'incidents', ['project', 'subject', 'kind', 'status'])


def downgrade() -> None:
    op.drop_table('incidents')
    op.drop_table('escalations')
    op.drop_table('schedules')
    op.drop_table('preferences')
    op.drop_table('recipient_group_members')
    op.drop_table('recipient_groups')
    op.drop_table('recipients')
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('reason')
        batch.drop_column('recipient')
