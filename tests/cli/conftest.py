"""Fixtures of the CLI tests that some share with other folders."""

from oauth.keeper_support import demo, endpoint  # noqa: F401  (fixtures: the oauthdemo kind, a token endpoint)
