"""The table of events pushed to calendars (``calendars/push.py``): per calendar integration and
task, where its event is and what we last wrote there. The task id is no foreign key: once a task is
deleted its row still says which event to delete."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table

from .tables import SafeString, metadata

calendar_events = Table(
    "calendar_events",
    metadata,
    Column("integration", String(100), primary_key=True, comment="the calendar integration"),
    Column("task_id", String(36), primary_key=True, comment="the task (no foreign key: it may be deleted already)"),
    Column("project", String(64), nullable=False),
    Column("state", String(12), nullable=False,
           comment="creating (a create was sent, its answer not stored yet), present, missing (reconcile found"
                   " it gone: push again), deleted"),
    Column("remote_id", SafeString(1024), comment="the event's id in the calendar; NULL while a Graph create is open"),
    Column("etag", SafeString(200), comment="the event's etag as last written or read, for If-Match"),
    Column("written_hash", String(64), comment="SHA-256 of the event as we last wrote it: an unchanged task writes nothing"),
    Column("creates", Integer, nullable=False, server_default="0",
           comment="events made for this task so far (a new one after a delete gets a new Graph transactionId)"),
    Column("updated_at", Float, nullable=False),
    Index("ix_calendar_events_remote", "integration", "remote_id"),
)
"""One row per (calendar integration, task) that ever had an event pushed."""
