"""Calendars: ICS feeds of a project's tasks with a due date (``feeds`` stores them, ``ics`` renders)."""
