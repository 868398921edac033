"""oauth_connections, oauth_states: OAuth connections of integrations and flows under way

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'oauth_connections',
        sa.Column('integration', sa.String(length=100), nullable=False,
                  comment='the integration whose token this is'),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False,
                  comment='github, slack, google, microsoft, atlassian'),
        sa.Column('status', sa.String(length=16), nullable=False,
                  comment="healthy, or needs_reauth (a refresh was refused: a person must connect again);"
                          " 'expiring' is worked out from the expiry columns"),
        sa.Column('account', sa.String(length=320), nullable=True,
                  comment='who connected, as the provider names them (login, email, team)'),
        sa.Column('account_id', sa.String(length=200), nullable=True, comment='their id at the provider'),
        sa.Column('scopes', sa.Text(), nullable=True, comment='the granted scopes, space-separated'),
        sa.Column('expires_at', sa.Float(), nullable=True, comment='when the access token expires; NULL: it does not'),
        sa.Column('refresh_expires_at', sa.Float(), nullable=True,
                  comment='when the refresh token expires; NULL: it does not, or there is none'),
        sa.Column('has_refresh', sa.Integer(), server_default='0', nullable=False,
                  comment='1 when a refresh token is stored'),
        sa.Column('extra', sa.JSON(), nullable=True,
                  comment='provider facts the integration needs: Atlassian cloud id and site, Slack team...'),
        sa.Column('connected_at', sa.Float(), nullable=False),
        sa.Column('connected_by', sa.String(length=36), nullable=True, comment='the tidings user who connected it'),
        sa.Column('refreshed_at', sa.Float(), nullable=True),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False,
                  comment='refreshes failed in a row (retryable)'),
        sa.Column('last_error', sa.Text(), nullable=True, comment='the last refresh or use error, secrets masked'),
        sa.Column('claimed_by', sa.String(length=100), nullable=True,
                  comment='the worker refreshing it now (one at a time per connection)'),
        sa.Column('claimed_until', sa.Float(), nullable=True),
        sa.Column('notified_at', sa.Float(), nullable=True, comment='when the owners were last told it needs re-auth'),
        sa.Column('version', sa.Integer(), server_default='1', nullable=False, comment='bumped by every token write'),
        sa.ForeignKeyConstraint(['project'], ['projects.slug'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('integration'),
    )
    op.create_index('ix_oauth_connections_project', 'oauth_connections', ['project'], unique=False)
    op.create_table(
        'oauth_states',
        sa.Column('state_hash', sa.String(length=64), nullable=False,
                  comment='SHA-256 of the state sent to the provider'),
        sa.Column('integration', sa.String(length=100), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('verifier', sa.LargeBinary(), nullable=False,
                  comment='the PKCE code verifier, encrypted with the vault keys'),
        sa.Column('redirect_uri', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(length=36), nullable=True, comment='the user who started the flow'),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('used_at', sa.Float(), nullable=True,
                  comment='set once, by the callback that used it: a replay finds it used'),
        sa.PrimaryKeyConstraint('state_hash'),
    )
    op.create_index('ix_oauth_states_expires', 'oauth_states', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_oauth_states_expires', table_name='oauth_states')
    op.drop_table('oauth_states')
    op.drop_index('ix_oauth_connections_project', table_name='oauth_connections')
    op.drop_table('oauth_connections')
