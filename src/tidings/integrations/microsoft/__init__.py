"""Microsoft: Outlook calendars through Microsoft Graph (pushing task due dates)."""

from .calendar import OutlookCalendar, OutlookCalendarSettings

__all__ = ["OutlookCalendar", "OutlookCalendarSettings"]
