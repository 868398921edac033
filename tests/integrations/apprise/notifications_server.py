"""A minimal ``org.freedesktop.Notifications`` server (what a desktop's notification daemon
answers on the session bus) that records each Notify call, for the desktop notification test.

No ``from __future__ import annotations`` here: dbus-next reads the D-Bus signature from the
annotations themselves."""

from dataclasses import dataclass
from typing import Any

from dbus_next.aio import MessageBus
from dbus_next.service import ServiceInterface, method

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


@dataclass
class Notified:
    app_name: str
    summary: str
    body: str
    hints: dict[str, Any]

    @property
    def urgency(self) -> int | None:
        hint = self.hints.get("urgency")
        return None if hint is None else int(hint.value)


class Notifications(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(NAME)
        self.calls: list[Notified] = []

    @method()
    def Notify(self, app_name: "s", replaces_id: "u", app_icon: "s", summary: "s", body: "s",  # noqa: N802, F722, F821
               actions: "as", hints: "a{sv}", expire_timeout: "i") -> "u":  # noqa: F722, F821
        self.calls.append(Notified(app_name, summary, body, dict(hints)))
        return len(self.calls)

    @method()
    def GetCapabilities(self) -> "as":  # noqa: N802, F722
        return ["body"]

    @method()
    def GetServerInformation(self) -> "ssss":  # noqa: N802, F821
        return ["tidings-test", "tidings", "1.0", "1.2"]

    @method()
    def CloseNotification(self, id: "u") -> None:  # noqa: N802, A002, F821
        return None


async def serve(address: str) -> tuple[MessageBus, Notifications]:
    """Own ``org.freedesktop.Notifications`` on the bus at ``address``."""
    bus = await MessageBus(bus_address=address).connect()
    server = Notifications()
    bus.export(PATH, server)
    await bus.request_name(NAME)
    return bus, server
