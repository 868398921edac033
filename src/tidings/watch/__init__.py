"""tidings watching itself: incidents (``incidents.py``) and the watcher that opens, resolves and
tells the project's ``alerts_to`` about them (``watcher.py``). See docs/watching.md."""

from .incidents import KINDS, get_incident, list_incidents
from .watcher import FAIL_AFTER, REJECT_AFTER, REJECT_WINDOW, Watch, notice

__all__ = ["FAIL_AFTER", "KINDS", "REJECT_AFTER", "REJECT_WINDOW", "Watch", "get_incident", "list_incidents", "notice"]
