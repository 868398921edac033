"""calendar_feeds: the ICS feeds of projects and users

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calendar_feeds',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False, comment="SHA-256 of the feed URL's token"),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=True,
                  comment='a personal feed: the tasks assigned to this user; NULL: every task of the project'),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('created_by', sa.String(length=36), nullable=True, comment='the user who made it (may revoke it)'),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('revoked_at', sa.Float(), nullable=True),
        sa.Column('last_used_at', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['project'], ['projects.slug'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_calendar_feeds_project', 'calendar_feeds', ['project'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_calendar_feeds_project', table_name='calendar_feeds')
    op.drop_table('calendar_feeds')
