"""What ``GET /integrations`` (and the UI, and ``tidings integrations``) shows of each integration:
its kind and project, its health from recent outcomes and its circuit breaker, its limits, and for
a receiver its inbound counts; for one that connects through OAuth, its connection's health."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..delivery import circuits
from ..delivery.stats import STATS_WINDOW, integration_stats
from ..inbound import inbound_stats
from ..oauth.connections import health, list_connections
from ..oauth.keeper import connectable_names

if TYPE_CHECKING:
    from ..hub import Hub


async def overview(hub: Hub, project: str | None) -> list[dict[str, Any]]:
    """Every integration (of ``project``, when given), in configuration order."""
    names = hub.integrations_of(project)
    senders = [n for n in names if n in hub.notifiers]
    connectable = connectable_names(hub, project)
    async with hub.require_store().read() as conn:
        connected = {c["integration"]: c for c in await list_connections(conn, project)} if connectable else {}
        stats = await integration_stats(conn, senders)
        inbound = await inbound_stats(conn, [n for n in names if n in hub.receivers], time.time() - STATS_WINDOW)
        breakers = await circuits.circuits(conn, senders, time.time())
    out = []
    for name in names:
        integration = hub._integrations[name]
        item: dict[str, Any] = {
            "name": name,
            "kind": integration.kind,
            "description": integration.settings.description,
            "sends": name in hub.notifiers,
            "receives": name in hub.receivers,
            "project": integration.project,
        }
        notifier = hub.notifiers.get(name)
        if notifier is not None:
            s = stats[name]
            breaker = breakers[name]
            item.update(
                health=s.health(breaker),
                circuit=breaker,
                disabled_reason=s.disabled_reason,
                limits={
                    "rate_limit": notifier.effective_rate_limit,
                    "burst": notifier.effective_burst,
                    "concurrency": notifier.effective_concurrency,
                    "timeout_s": notifier.effective_timeout,
                },
                stats=s.as_dict(),
            )
        else:
            item["health"] = "failing" if inbound.get(name, {}).get("failed") else "ok"
        if name in hub.receivers:
            item["inbound"] = {**inbound[name], "rejected": hub.rejected[name]}
        if name in connectable:
            item["connection"] = health(connected.get(name))
        out.append(item)
    return out
