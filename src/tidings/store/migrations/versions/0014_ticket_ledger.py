"""ticket_ledger: one ticket per alert for the jira and servicenow ticket integrations

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 10:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ticket_ledger',
        sa.Column('integration', sa.String(length=100), nullable=False,
                  comment='the ticket integration (jira, servicenow)'),
        sa.Column('alert_key', sa.String(length=500), nullable=False,
                  comment="the message's dedup key, else its thread key, else its id"),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False,
                  comment='creating (a create was sent or is about to be, its answer not stored yet), open, resolved'),
        sa.Column('marker', sa.String(length=64), nullable=False,
                  comment='our id for the current ticket, carried by it (Jira label, ServiceNow correlation_id) so that'
                          ' a create whose answer was lost is found before a retry'),
        sa.Column('created_by', sa.String(length=36), nullable=True,
                  comment='the delivery that creates the current ticket'),
        sa.Column('remote_id', sa.String(length=200), nullable=True,
                  comment="the ticket's id (Jira issue id, ServiceNow sys_id)"),
        sa.Column('remote_key', sa.String(length=200), nullable=True, comment='its human key (OPS-12, INC0010001)'),
        sa.Column('url', sa.String(length=2000), nullable=True),
        sa.Column('tickets', sa.Integer(), server_default='0', nullable=False,
                  comment='tickets opened for this alert so far'),
        sa.Column('comments', sa.Integer(), server_default='0', nullable=False,
                  comment='comments (work notes) added'),
        sa.Column('pending_repeats', sa.Integer(), server_default='0', nullable=False,
                  comment='repeats since the last comment, counted in the next one'),
        sa.Column('last_comment_at', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('resolved_at', sa.Float(), nullable=True),
        sa.Column('lease_owner', sa.String(length=64), nullable=True,
                  comment='the send working on this alert now (one at a time)'),
        sa.Column('lease_until', sa.Float(), nullable=True,
                  comment='when that lease lapses (a worker that died lets go)'),
        sa.PrimaryKeyConstraint('integration', 'alert_key'),
    )


def downgrade() -> None:
    op.drop_table('ticket_ledger')
