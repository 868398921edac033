"""The watch's tests run on databases migrated once per worker (``tests/migrated.py``), with the
OAuth stand-ins (the ``oauthdemo`` kind and a token endpoint) for the connection signal."""

from oauth.keeper_support import demo, endpoint  # noqa: F401  (fixtures)
