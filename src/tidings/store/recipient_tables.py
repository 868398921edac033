"""Recipients, their preferences and quiet hours; scheduled messages; escalations; incidents of
tidings watching itself. Project-level policy (topics, the project's default preferences and quiet
hours, ``alerts_to``) lives in the configuration's ``projects:`` section, not here."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from .tables import SafeString, metadata

recipients = Table(
    "recipients",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False, comment="the handle routes name as @name"),
    Column("display_name", SafeString(200), nullable=False),
    Column("email", String(320)),
    Column("slack_user", String(32), comment="Slack user id (U…/W…): a DM through the bot"),
    Column("teams_url", String(200),
           comment="a ${vault:...} reference to the person's Teams workflow URL (it is a credential)"),
    Column("timezone", String(64), nullable=False, server_default="UTC", comment="IANA name"),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="SET NULL"),
           comment="the tidings user this recipient is, if any (may edit their own preferences)"),
    Column("quiet_hours", JSON, comment="the person's own quiet hours (QuietHours); NULL: the project's"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    UniqueConstraint("project", "name", name="uq_recipients_project_name"),
    Index("ix_recipients_user", "user_id"),
)
"""A person of a project with an address per channel."""

recipient_groups = Table(
    "recipient_groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(64), ForeignKey("projects.slug", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False, comment="routes name it as @name, like a recipient"),
    Column("description", SafeString(500)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project", "name", name="uq_recipient_groups_project_name"),
)
"""A named set of recipients (``@oncall``). A group and a recipient of a project never share a name."""

recipient_group_members = Table(
    "recipient_group_members",
    metadata,
    Column("group_id", String(36), ForeignKey("recipient_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("recipient_id", String(36), ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, nullable=False, server_default="0"),
    Index("ix_recipient_group_members_recipient", "recipient_id"),
)

preferences = Table(
    "preferences",
    metadata,
    Column("recipient_id", String(36), ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True),
    Column("topic", String(64), primary_key=True, comment="'' = any topic"),
    Column("channel", String(100), primary_key=True, comment="an integration name; '' = any channel"),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", SafeString(200), comment="who set it: a user, or 'unsubscribe link'"),
)
"""A recipient's on/off per (topic, channel); ('', '') is their global switch."""

schedules = Table(
    "schedules",
    metadata,
    Column("message_id", String(36), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("due_at", Float, nullable=False),
    Column("status", String(12), nullable=False, comment="scheduled, routed, cancelled, failed"),
    Column("to", JSON, comment="the integrations (and @recipients) named at send time; NULL: the routes"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("cancelled_by", SafeString(200)),
    Column("reason", SafeString(500), comment="why it failed (its `to` names what no longer exists)"),
    Index("ix_schedules_due", "status", "due_at"),
)
"""A message accepted to be routed later (``send_at`` / ``delay``): it has no deliveries until then."""

escalations = Table(
    "escalations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("message_id", String(36), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("project", String(64), nullable=False),
    Column("route", String(100), nullable=False, comment="the route whose escalation policy applies"),
    Column("step", Integer, nullable=False, comment="the next step to fire (0-based)"),
    Column("due_at", Float, nullable=False),
    Column("status", String(12), nullable=False, comment="waiting, stopped (acknowledged), done"),
    Column("reason", SafeString(500), comment="why it stopped or ended"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    UniqueConstraint("message_id", "route", name="uq_escalations_message_route"),
    Index("ix_escalations_due", "status", "due_at"),
)
"""One per (message, route with an ``escalation:`` policy): the next step and when it fires."""

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("subject", SafeString(300), nullable=False,
           comment="what broke: integration/NAME, inbound/NAME, sync/NAME, connection/NAME"),
    Column("kind", String(40), nullable=False, comment="failing, circuit_open, dead, verification, sync, connection"),
    Column("status", String(12), nullable=False, comment="open, resolved"),
    Column("detail", SafeString(2000)),
    Column("opened_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("notified_at", Float, comment="when the owners were last told it is open"),
    Column("resolved_at", Float),
    Column("count", Integer, nullable=False, server_default="1", comment="occurrences while open"),
    Column("notice", SafeString(500), comment="what became of the last notice: sent to whom, or why none went"),
    Index("ix_incidents_subject", "project", "subject", "kind", "status"),
)
"""tidings watching itself: one row per incident (open → resolved), so owners hear of each once
per incident and cooldown, and again when it recovers."""
