"""The ticket ledger (``integrations/tickets.py``): one row per (ticket integration, alert), saying
which remote ticket the alert has, whether it is open, and how its repeats were commented."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, String, Table

from .tables import SafeString, metadata

ticket_ledger = Table(
    "ticket_ledger",
    metadata,
    Column("integration", String(100), primary_key=True, comment="the ticket integration (jira, servicenow)"),
    Column("alert_key", SafeString(500), primary_key=True,
           comment="the message's dedup key, else its thread key, else its id"),
    Column("project", String(64), nullable=False),
    Column("state", String(12), nullable=False,
           comment="creating (a create was sent or is about to be, its answer not stored yet), open, resolved"),
    Column("marker", String(64), nullable=False,
           comment="our id for the current ticket, carried by it (Jira label, ServiceNow correlation_id) so that a"
                   " create whose answer was lost is found before a retry"),
    Column("created_by", String(36), comment="the delivery that creates the current ticket"),
    Column("remote_id", SafeString(200), comment="the ticket's id (Jira issue id, ServiceNow sys_id)"),
    Column("remote_key", SafeString(200), comment="its human key (OPS-12, INC0010001)"),
    Column("url", SafeString(2000)),
    Column("tickets", Integer, nullable=False, server_default="0", comment="tickets opened for this alert so far"),
    Column("comments", Integer, nullable=False, server_default="0", comment="comments (work notes) added"),
    Column("pending_repeats", Integer, nullable=False, server_default="0",
           comment="repeats since the last comment, counted in the next one"),
    Column("last_comment_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("resolved_at", Float),
    Column("lease_owner", String(64), comment="the send working on this alert now (one at a time)"),
    Column("lease_until", Float, comment="when that lease lapses (a worker that died lets go)"),
)
"""One row per (ticket integration, alert key)."""
