"""Calendar feed tests run on a database migrated once per worker (tests/migrated.py)."""

from migrated import db_url, migrated_databases  # noqa: F401  (fixtures)
