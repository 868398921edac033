"""tasks (and their numbers per project), their links to tracker items, sweep cursors, the sync log and parked conflicts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tasks',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False,
                  comment='per project: 1, 2, ...; the key people type (T-12)'),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=64), nullable=False, comment="the project's own name for it"),
        sa.Column('category', sa.String(length=12), nullable=False, comment='todo, in_progress or done'),
        sa.Column('priority', sa.String(length=10), nullable=False),
        sa.Column('assignee', sa.String(length=320), nullable=True,
                  comment="a tidings user's email or an external login (github:octocat)"),
        sa.Column('labels', sa.JSON(), nullable=False, comment='sorted list of strings'),
        sa.Column('due', sa.String(length=10), nullable=True, comment='YYYY-MM-DD'),
        sa.Column('version', sa.Integer(), nullable=False, comment='1, 2, ...: the ETag; every change adds one'),
        sa.Column('created_by', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['project'], ['projects.slug'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ux_tasks_number', 'tasks', ['project', 'number'], unique=True)
    op.create_index('ix_tasks_updated', 'tasks', ['project', 'updated_at'], unique=False)
    op.create_table(
        'task_links',
        sa.Column('id', sa.String(length=36), nullable=False,
                  comment='also the marker a create leaves on the remote item'),
        sa.Column('task_id', sa.String(length=36), nullable=True,
                  comment='NULL once the task was deleted here (the link stays so the item is not imported again)'),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('integration', sa.String(length=100), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False,
                  comment='creating (a create was sent, its answer not yet stored), linked, unlinked (task deleted here),'
                          ' deleted (the remote item is gone)'),
        sa.Column('remote_id', sa.String(length=100), nullable=True,
                  comment='GitHub issue number, Jira issue id; NULL while creating'),
        sa.Column('remote_key', sa.String(length=200), nullable=True, comment='owner/repo#12, PROJ-12'),
        sa.Column('remote_url', sa.Text(), nullable=True),
        sa.Column('remote_updated', sa.Float(), nullable=True, comment="the remote item's updated time we last synced"),
        sa.Column('etag', sa.String(length=200), nullable=True, comment="the item's ETag, for conditional GETs"),
        sa.Column('base', sa.JSON(), nullable=True,
                  comment="each synced field's last agreed value (task space): the 3-way merge's base"),
        sa.Column('written_hash', sa.String(length=64), nullable=True,
                  comment='digest of the remote state we last wrote: its echo is dropped'),
        sa.Column('claimed_by', sa.String(length=100), nullable=True, comment='the worker syncing this item now'),
        sa.Column('claimed_until', sa.Float(), nullable=True),
        sa.Column('synced_at', sa.Float(), nullable=True, comment='when this link last agreed with the task'),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True, comment='the last sync error of this item'),
        sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ux_task_links_remote', 'task_links', ['integration', 'remote_id'], unique=True)
    op.create_index('ux_task_links_task', 'task_links', ['task_id', 'integration'], unique=True)
    op.create_index('ix_task_links_project', 'task_links', ['project', 'integration'], unique=False)
    op.create_table(
        'sync_cursors',
        sa.Column('integration', sa.String(length=100), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('mark', sa.Float(), nullable=True, comment='high-water mark: the newest remote updated time swept'),
        sa.Column('list_etag', sa.String(length=200), nullable=True, comment="ETag of the sweep's first page, for a 304"),
        sa.Column('next_run_at', sa.Float(), nullable=False),
        sa.Column('claimed_by', sa.String(length=100), nullable=True),
        sa.Column('claimed_until', sa.Float(), nullable=True),
        sa.Column('failures', sa.Integer(), server_default=sa.text('0'), nullable=False, comment='runs failed in a row'),
        sa.Column('last_run_id', sa.String(length=36), nullable=True),
        sa.Column('notified_at', sa.Float(), nullable=True,
                  comment='when the owners were last told its runs keep failing'),
        sa.PrimaryKeyConstraint('integration'),
    )
    op.create_table(
        'sync_runs',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('integration', sa.String(length=100), nullable=False),
        sa.Column('trigger', sa.String(length=16), nullable=False, comment='webhook, sweep, manual, local, plan'),
        sa.Column('status', sa.String(length=16), nullable=False, comment='running, ok, partial, failed, rate_limited'),
        sa.Column('started_at', sa.Float(), nullable=False),
        sa.Column('ended_at', sa.Float(), nullable=True),
        *(sa.Column(name, sa.Integer(), server_default=sa.text('0'), nullable=False)
          for name in ('created', 'updated', 'unchanged', 'conflicts', 'errors', 'api_calls')),
        sa.Column('not_modified', sa.Integer(), server_default=sa.text('0'), nullable=False, comment='answers 304'),
        sa.Column('rate_limit_waits', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('waited', sa.Float(), server_default=sa.text('0'), nullable=False,
                  comment='seconds spent waiting on limits'),
        sa.Column('error', sa.Text(), nullable=True, comment='why the run failed or stopped'),
        sa.Column('problems', sa.JSON(), nullable=True, comment='per-item errors: [{task, remote, error}], at most 100'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sync_runs_project', 'sync_runs', ['project', 'started_at'], unique=False)
    op.create_index('ix_sync_runs_integration', 'sync_runs', ['integration', 'started_at'], unique=False)
    op.create_table(
        'sync_conflicts',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('task_id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('integration', sa.String(length=100), nullable=False),
        sa.Column('field', sa.String(length=20), nullable=False),
        sa.Column('base', sa.JSON(), nullable=True),
        sa.Column('local', sa.JSON(), nullable=True),
        sa.Column('remote', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('resolved_at', sa.Float(), nullable=True),
        sa.Column('resolved_by', sa.String(length=320), nullable=True),
        sa.Column('resolution', sa.JSON(), nullable=True, comment='the value chosen'),
        sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sync_conflicts_open', 'sync_conflicts', ['project', 'resolved_at'], unique=False)
    op.create_index('ix_sync_conflicts_task', 'sync_conflicts', ['task_id', 'integration', 'field'], unique=False)
    op.create_table(
        'task_numbers',
        sa.Column('project', sa.String(length=64), nullable=False),
        sa.Column('last', sa.Integer(), nullable=False,
                  comment="the project's last task number: a deleted task's number is not given again"),
        sa.ForeignKeyConstraint(['project'], ['projects.slug'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project'),
    )


def downgrade() -> None:
    op.drop_table('task_numbers')
    op.drop_table('sync_conflicts')
    op.drop_table('sync_runs')
    op.drop_table('sync_cursors')
    op.drop_table('task_links')
    op.drop_table('tasks')
