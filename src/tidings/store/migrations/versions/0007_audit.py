"""accounts and the audit trail: users, projects, memberships, sessions, token owners; a hash-chained
log and its signed checkpoints

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_log',
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False, comment='gap-free, from 1'),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('actor', sa.String(length=20), nullable=False, comment='user, token or system'),
        sa.Column('actor_id', sa.String(length=64), nullable=True),
        sa.Column('actor_name', sa.String(length=320), nullable=True),
        sa.Column('auth_method', sa.String(length=20), nullable=True),
        sa.Column('token_id', sa.String(length=64), nullable=True),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=500), nullable=True),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('project', sa.String(length=100), nullable=True),
        sa.Column('action', sa.String(length=100), nullable=False),
        sa.Column('target', sa.String(length=500), nullable=True),
        sa.Column('before', sa.JSON(), nullable=True),
        sa.Column('after', sa.JSON(), nullable=True),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('prev_hash', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_index('ix_audit_log_action', 'audit_log', ['action', 'seq'], unique=False)
    op.create_index('ix_audit_log_project', 'audit_log', ['project', 'seq'], unique=False)
    op.create_table(
        'audit_checkpoints',
        sa.Column('tree_size', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('head_hash', sa.String(length=64), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('signature', sa.String(length=100), nullable=False,
                  comment='base64 Ed25519 over the canonical checkpoint'),
        sa.PrimaryKeyConstraint('tree_size'),
    )

    op.create_table(
        'users',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False, comment='lower-cased'),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=True,
                  comment="argon2id; NULL: can't sign in with a password"),
        sa.Column('disabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('site_admin', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('email'),
    )
    op.create_table(
        'projects',
        sa.Column('slug', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('slug'),
    )
    op.execute("INSERT INTO projects (slug, name, created_at) VALUES ('default', 'Default', 0)")
    op.create_table(
        'memberships',
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['project'], ['projects.slug'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project', 'user_id'),
    )
    op.create_index('ix_memberships_user', 'memberships', ['user_id'], unique=False)
    op.create_table(
        'sessions',
        sa.Column('id', sa.String(length=64), nullable=False, comment="SHA-256 of the cookie's value"),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('last_seen_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('revoked_at', sa.Float(), nullable=True),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sessions_user', 'sessions', ['user_id'], unique=False)
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('user_id', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('project', sa.String(length=64), nullable=True,
                                   comment='a scoped token acts only in this project'))
        batch.add_column(sa.Column('expires_at', sa.Float(), nullable=True))
        batch.create_foreign_key('fk_api_tokens_user', 'users', ['user_id'], ['id'], ondelete='CASCADE')
        batch.create_foreign_key('fk_api_tokens_project', 'projects', ['project'], ['slug'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_constraint('fk_api_tokens_project', type_='foreignkey')
        batch.drop_constraint('fk_api_tokens_user', type_='foreignkey')
        batch.drop_column('expires_at')
        batch.drop_column('project')
        batch.drop_column('user_id')
    op.drop_index('ix_sessions_user', table_name='sessions')
    op.drop_table('sessions')
    op.drop_index('ix_memberships_user', table_name='memberships')
    op.drop_table('memberships')
    op.drop_table('projects')
    op.drop_table('users')
    op.drop_table('audit_checkpoints')
    op.drop_index('ix_audit_log_project', table_name='audit_log')
    op.drop_index('ix_audit_log_action', table_name='audit_log')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
