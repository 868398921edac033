"""delivery_attempts: the failed attempts of each delivery

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'delivery_attempts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('delivery_id', sa.String(length=36), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False,
                  comment="the delivery's attempt number (a retry by hand starts again at 1)"),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('outcome', sa.String(length=8), nullable=False, comment='retry or dead'),
        sa.Column('status_code', sa.Integer(), nullable=True,
                  comment="the peer's HTTP status; NULL when it answered none (a reset, a timeout)"),
        sa.Column('latency_ms', sa.Float(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True,
                  comment='what went wrong, masked then cut, as in deliveries.last_error'),
        sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_delivery_attempts_delivery', 'delivery_attempts', ['delivery_id', 'attempt'])


def downgrade() -> None:
    op.drop_table('delivery_attempts')
