"""What a starting hub runs: the file imported as a revision (a dispatching hub, or the first start
of all), the current revision, or, for a hub that does not import, what the import would make."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidings import Hub
from tidings.config import revisions as rv
from tidings.errors import ConfigError, TidingsError
from tidings.store.engine import Store

HOOK = {"kind": "webhook", "url": "https://a.example.com/"}


async def head(store: Store) -> rv.Revision | None:
    async with store.read() as conn:
        return await rv.current(conn)


async def test_the_first_hub_imports_and_the_next_one_finds_it(make_hub: Any) -> None:
    first = await make_hub({"integrations": {"a": HOOK}}, dispatch=False)
    assert first.revision == 1 and set(first.config.integrations) == {"a", "inbox"}
    second = await make_hub({"integrations": {"a": HOOK}})
    assert second.revision == 1
    revision = await head(second.require_store())
    assert revision is not None and revision.number == 1 and revision.source == "file"


async def test_a_hub_that_does_not_import_runs_the_changed_file_without_storing_it(make_hub: Any) -> None:
    await make_hub({"integrations": {"a": HOOK}})
    reader = await make_hub({"integrations": {"a": HOOK, "b": HOOK}, "routes": [{"to": ["b"]}]}, dispatch=False)
    assert set(reader.config.integrations) == {"a", "b", "inbox"} and reader.router.project_of["b"] == "default"
    assert reader.revision == 1  # what it runs is based on revision 1
    assert (await head(reader.require_store())).number == 1  # type: ignore[union-attr]
    worker = await make_hub({"integrations": {"a": HOOK, "b": HOOK}, "routes": [{"to": ["b"]}]})
    assert worker.revision == 2 and set(worker.config.integrations) == {"a", "b", "inbox"}


async def test_a_start_that_fails_imports_nothing(make_hub: Any, make_config: Callable[..., Any], tmp_path: Path) -> None:
    first = await make_hub({"integrations": {"a": HOOK}})
    signed = {"integrations": {"a": HOOK, "signed": {**HOOK, "secret": "${vault:not-stored}"}}}
    hub = Hub(make_config(signed), config_dir=tmp_path)
    with pytest.raises(TidingsError, match="not-stored"):
        await hub.start()
    revision = await head(first.require_store())
    assert revision is not None and revision.number == 1 and "signed" not in revision.document["integrations"]


async def test_an_import_refused_at_start_leaves_the_current_revision_running(make_hub: Any, store: Store) -> None:
    first = await make_hub({"integrations": {"a": HOOK, "x": HOOK}})
    async with store.write() as conn:  # the API routes to x
        document = {**first.config._raw, "routes": [{"to": ["x"]}]}
        await rv.commit(conn, {k: document[k] for k in ("integrations", "routes", "default")}, expected=1)
    # The file drops x: the merge would leave a route to nothing.
    hub = await make_hub({"integrations": {"a": HOOK}})
    assert hub.revision == 2 and set(hub.config.integrations) == {"a", "x", "inbox"}
    assert (await head(store)).number == 2  # type: ignore[union-attr]


async def test_an_invalid_first_import_fails_the_start(make_config: Callable[..., Any], tmp_path: Path) -> None:
    # A reference to a value of a file this one is not: the revision could not run.
    # A file may not hold such a reference (only a revision does): refused before any hub starts.
    with pytest.raises(ConfigError, match="integrations.a.headers.X-Key"):
        make_config({"integrations": {"a": {**HOOK, "headers": {"X-Key": "${file:integrations.b.headers.X}"}}}})
