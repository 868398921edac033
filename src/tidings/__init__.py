"""tidings: notifications out, verified webhooks in, durable in between.

The shortest working example::

    import asyncio
    from tidings import Hub, Message

    async def main():
        async with Hub.from_config() as hub:
            receipt = await hub.notify(Message("Disk almost full", priority="high"))
            print(receipt.id)

    asyncio.run(main())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, IdempotencyConflict, MessageError, NotFound, TidingsError, UnknownIntegration

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .delivery.outbox import Receipt
    from .hub import Hub
    from .integrations.base import Outcome
    from .message import Field, Format, Link, Message, Priority

# Imported on first use: `import tidings` (and the `tidings` command's start) must not load the
# hub, SQLAlchemy, aiohttp and pydantic until something needs them.
_LAZY = {
    "Receipt": "delivery.outbox",
    "Hub": "hub",
    "Outcome": "integrations.base",
    "Field": "message",
    "Format": "message",
    "Link": "message",
    "Message": "message",
    "Priority": "message",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tidings' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ConfigError",
    "Field",
    "Format",
    "Hub",
    "IdempotencyConflict",
    "Link",
    "Message",
    "MessageError",
    "NotFound",
    "Outcome",
    "Priority",
    "Receipt",
    "TidingsError",
    "UnknownIntegration",
    "__version__",
]
