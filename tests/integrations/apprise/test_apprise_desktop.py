"""Desktop notifications: a critical message through a real hub and the outbox reaches a
notification daemon over D-Bus (Apprise's ``dbus://``), on a private session bus this test starts
(``dbus-daemon --session``) with a minimal ``org.freedesktop.Notifications`` server in the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually, services_required

from tidings import Message
from tidings.message import Priority

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def _why_not() -> str | None:
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed"
    try:
        import dbus_next  # noqa: F401
    except ImportError:
        return "dbus-next is not installed (the test extra)"
    from apprise.plugins import dbus as apprise_dbus

    if not apprise_dbus.NOTIFY_DBUS_SUPPORT_ENABLED:
        return "Apprise's dbus:// plugin is off: dbus-python (tidings[desktop]) is not installed"
    return None


@pytest.fixture(scope="module")
def session_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private session bus for this module (dbus-python keeps one shared session connection per
    process, so the bus outlives each test); DBUS_SESSION_BUS_ADDRESS points at it."""
    if reason := _why_not():
        if services_required():  # .ci/run installs D-Bus and tidings[desktop]
            pytest.fail(f"TIDINGS_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("dbus")
    conf = folder / "session.conf"
    conf.write_text(BUS_CONFIG.format(socket=folder / "bus"))
    proc = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--print-address", "--nofork"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("unix:"), address
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DBUS_SESSION_BUS_ADDRESS", address)
            yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_critical_message_on_the_desktop(make_hub: Any, session_bus: str, tmp_path: Path) -> None:
    from notifications_server import serve

    bus, server = await serve(session_bus)
    try:
        assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == session_bus
        ops = {"kind": "apprise", "urls": ["dbus://"], "retry": {"base": 0.05, "cap": 0.2}}
        hub = await make_hub({"integrations": {"desktop": ops}, "default": {"to": ["desktop"]}})
        m = await hub.notify(Message("db1 is down", body="replication stopped", priority=Priority.CRITICAL))

        async def shown() -> bool:
            return bool(server.calls)

        await eventually(shown, timeout=15)

        async def delivered() -> bool:
            return (await hub.message(m.id))["deliveries"][0]["status"] == "delivered"

        await eventually(delivered)
        [call] = server.calls
        assert call.app_name == "tidings"
        assert call.summary == "db1 is down" and "replication stopped" in call.body
        assert call.urgency == 2, call.hints  # critical
        low = await hub.notify(Message("fyi", priority=Priority.LOW))

        async def two() -> bool:
            return len(server.calls) == 2

        await eventually(two)
        assert server.calls[1].urgency == 0
        assert (await hub.message(low.id))["deliveries"][0]["status"] in ("delivered", "sending")
    finally:
        bus.disconnect()
