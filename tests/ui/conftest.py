"""The UI tests' fixtures (defined in ui_support.py: a real ``tidings serve`` and chromium)."""

from ui_support import admin_page, background, browser, hub_site, page, person  # noqa: F401  (fixtures)
