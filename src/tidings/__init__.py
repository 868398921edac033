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

__version__ = "0.1.0"

from .delivery.outbox import Receipt
from .errors import ConfigError, IdempotencyConflict, MessageError, NotFound, TidingsError, UnknownIntegration
from .hub import Hub
from .integrations.base import Outcome
from .message import Field, Format, Link, Message, Priority

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

