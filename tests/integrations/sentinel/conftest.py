"""The Azure Monitor stand-in with the stream docs/sentinel.md tells users to declare, and the
sentinel integration's settings against it."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from peers.azure_monitor import CLIENT_ID, DCR, SECRET, STREAM, TENANT, AzureMonitor

DOCS = Path(__file__).resolve().parents[3] / "docs" / "sentinel.md"


def documented_columns() -> dict[str, dict[str, str]]:
    """Stream -> column -> type, from the DCR JSON in docs/sentinel.md."""
    for block in re.findall(r"```json\n(.*?)```", DOCS.read_text(), re.S):
        dcr = json.loads(block)
        declarations = dcr["properties"]["streamDeclarations"]
        return {name: {c["name"]: c["type"] for c in d["columns"]} for name, d in declarations.items()}
    raise AssertionError("docs/sentinel.md has no DCR JSON")


@pytest.fixture
async def azure() -> AsyncIterator[AzureMonitor]:
    peer = AzureMonitor(columns=documented_columns())
    await peer.start()
    yield peer
    await peer.stop()


def sentinel_settings(azure: AzureMonitor, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "sentinel", "endpoint": azure.url, "dcr_immutable_id": DCR, "stream": STREAM,
        "tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": SECRET, "authority_url": azure.url,
        "allow_destinations": ["127.0.0.1"], **extra,
    }
