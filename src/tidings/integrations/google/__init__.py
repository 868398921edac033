"""Google: Calendar v3 (pushing task due dates)."""

from .calendar import GoogleCalendar, GoogleCalendarSettings

__all__ = ["GoogleCalendar", "GoogleCalendarSettings"]
