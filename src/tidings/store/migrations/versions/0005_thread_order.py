"""deliveries keep their thread and order of acceptance, so a thread goes out in order

A delivery of a message with a ``thread_key`` stores the key's hash (``thread``) and when it was
accepted (``thread_seq``, nanoseconds); the claim takes a thread's deliveries one at a time in that
order, through a partial index holding only the active deliveries that have a thread. Deliveries
still waiting when this runs get the same from their message (thread_seq from created_at).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 22:40:00
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

ACTIVE_SQL = "status = 'pending' OR status = 'retrying' OR status = 'sending'"
THREAD_SQL = f"thread IS NOT NULL AND ({ACTIVE_SQL})"


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread', sa.String(length=64), nullable=True,
                                      comment="sha256 of the message's thread_key; NULL without one"))
        batch_op.add_column(sa.Column('thread_seq', sa.BigInteger(), nullable=True,
                                      comment='order of acceptance within the thread (ns, per writer strictly rising)'))
    conn = op.get_bind()
    waiting = conn.execute(sa.text(
        "SELECT d.id, d.created_at, m.thread_key FROM deliveries d JOIN messages m ON m.id = d.message_id"
        f" WHERE ({ACTIVE_SQL.replace('status', 'd.status')}) AND m.thread_key IS NOT NULL"
    )).all()
    if waiting:
        conn.execute(
            sa.text("UPDATE deliveries SET thread = :thread, thread_seq = :seq WHERE id = :id"),
            [{"id": r.id, "thread": hashlib.sha256(r.thread_key.encode()).hexdigest(),
              "seq": int(r.created_at * 1e9)} for r in waiting],
        )
    op.create_index('ix_deliveries_thread', 'deliveries', ['integration', 'thread', 'thread_seq'], unique=False,
                    sqlite_where=sa.text(THREAD_SQL), postgresql_where=sa.text(THREAD_SQL))


def downgrade() -> None:
    op.drop_index('ix_deliveries_thread', table_name='deliveries')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('thread_seq')
        batch_op.drop_column('thread')
