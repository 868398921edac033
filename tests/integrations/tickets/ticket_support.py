"""What the ticket tests share: settings defaults, routing, waiting on a delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from helpers import eventually

FAST = {"retry": {"base": 0.05, "cap": 0.2, "max_attempts": 30}, "breaker": {"min_calls": 1000}}


def routed(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {name: settings}, "default": {"to": [name]}}


async def settle(hub: Any, message_id: str, check: Callable[[dict[str, Any]], bool] | None = None,
                 timeout: float = 15.0) -> dict[str, Any]:
    """The message's only delivery once ``check`` holds (default: a final status)."""
    check = check or (lambda d: d["status"] in ("delivered", "dead"))

    async def ok() -> bool:
        return check((await hub.message(message_id))["deliveries"][0])

    await eventually(ok, timeout=timeout)
    return (await hub.message(message_id))["deliveries"][0]
