"""Optional dependencies: the PostgreSQL driver (``tidings[postgres]``) and the Redis client
(``tidings[redis]``) are installed only when asked for; using a URL that needs one without it
is a one-line configuration error naming the extra, not an ImportError traceback."""

from __future__ import annotations

import importlib

from .errors import ConfigError


def require(module: str, extra: str, what: str) -> None:
    """Import ``module``, or raise ConfigError saying which extra provides it for ``what``."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            [f"{what} needs the {module} package, which is not installed: pip install 'tidings[{extra}]'"]
        ) from None


__all__ = ["require"]
