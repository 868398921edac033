"""Fixtures of the OAuth tests: the database migrated once per worker (tests/migrated.py), and the
served hub with a connectable integration per provider against the authorization server stand-in
(tests/oauth/flow_support.py)."""

from flow_support import make_world, probe_kinds  # noqa: F401  (fixtures)
from oauth.e2e_support import make_e2e  # noqa: F401  (fixture: the real kinds, served)
from oauth.keeper_support import demo, endpoint  # noqa: F401  (fixtures: the oauthdemo kind, a token endpoint)
