"""the audit trail: a hash-chained log and its signed checkpoints

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-05 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0004'
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


def downgrade() -> None:
    op.drop_table('audit_checkpoints')
    op.drop_index('ix_audit_log_project', table_name='audit_log')
    op.drop_index('ix_audit_log_action', table_name='audit_log')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
