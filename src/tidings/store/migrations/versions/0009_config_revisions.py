"""configuration revisions, the current-revision pointer, the revision each process runs; held deliveries

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

OLD_HELD = "status = 'pending' OR status = 'retrying' OR status = 'dead' OR status = 'suppressed' OR status = 'grouped'"
NEW_HELD = OLD_HELD + " OR status = 'held'"
ACTIVE = "status = 'pending' OR status = 'retrying' OR status = 'sending'"
OLD_THREAD = f"thread IS NOT NULL AND ({ACTIVE})"
NEW_THREAD = f"thread IS NOT NULL AND ({ACTIVE} OR status = 'held')"
"""A held delivery of a thread blocks the thread's later ones (``store/tables.py`` ``THREAD_SQL``)."""


def _held_index(condition: str) -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_index('ix_deliveries_held')
        batch.create_index('ix_deliveries_held', ['status', 'id'], unique=False,
                           sqlite_where=sa.text(condition), postgresql_where=sa.text(condition))


def _thread_index(condition: str) -> None:
    op.drop_index('ix_deliveries_thread', table_name='deliveries')
    op.create_index('ix_deliveries_thread', 'deliveries', ['integration', 'thread', 'thread_seq'], unique=False,
                    sqlite_where=sa.text(condition), postgresql_where=sa.text(condition))


def upgrade() -> None:
    op.create_table(
        'config_revisions',
        sa.Column('number', sa.Integer(), autoincrement=False, nullable=False, comment='1, 2, ... (gap-free)'),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('author', sa.String(length=320), nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False, comment='file, api, cli or ui'),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.Column('document', sa.Text(), nullable=False,
                  comment='JSON: integrations, routes, default; secrets as references'),
        sa.Column('digest', sa.String(length=64), nullable=False, comment='sha256 of the canonical document'),
        sa.Column('parent', sa.Integer(), nullable=True, comment='the revision it was made from'),
        sa.Column('audit_seq', sa.Integer(), nullable=True, comment='the audit entry that made it'),
        sa.PrimaryKeyConstraint('number'),
    )
    op.create_table(
        'config_state',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False, comment='always 1'),
        sa.Column('current', sa.Integer(), nullable=False, comment='the revision every process runs'),
        sa.Column('file_digest', sa.String(length=64), nullable=True, comment='digest of the file document imported last'),
        sa.Column('file_document', sa.Text(), nullable=True,
                  comment="that file document (JSON), to merge the file's next change"),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'config_processes',
        sa.Column('owner', sa.String(length=100), nullable=False, comment='host:pid:random of a running hub'),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('applied_at', sa.Float(), nullable=False),
        sa.Column('problem', sa.Text(), nullable=True, comment='why it could not switch to the current revision'),
        sa.Column('seen_at', sa.Float(), nullable=True,
                  comment='its last sign of life (the watcher writes it every HEARTBEAT seconds)'),
        sa.PrimaryKeyConstraint('owner'),
    )
    _held_index(NEW_HELD)
    _thread_index(NEW_THREAD)


def downgrade() -> None:
    op.execute("UPDATE deliveries SET status = 'pending' WHERE status = 'held'")
    _thread_index(OLD_THREAD)
    _held_index(OLD_HELD)
    op.drop_table('config_processes')
    op.drop_table('config_state')
    op.drop_table('config_revisions')
