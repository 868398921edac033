"""Two races of live reload the end-to-end test (test_live_e2e.py) found, each pinned down on its own:
a hub's row in ``config_processes`` is written once it starts (not only at its first switch), and
a lane a switch retires while the dispatcher claims is no error."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import eventually
from sqlalchemy import select

from tidings.delivery import outbox
from tidings.store.tables import config_processes


def hooks(peer: Any, *names: str) -> dict[str, Any]:
    return {
        "integrations": {n: {"kind": "webhook", "url": f"{peer.url}/{n}"} for n in names},
        "default": {"to": [names[0]]},
    }


@pytest.mark.parametrize("dispatch", [True, False], ids=["worker", "server"])
async def test_a_hub_says_which_revision_it_runs_as_soon_as_it_started(
    make_hub: Any, peer: Any, dispatch: bool
) -> None:
    hub = await make_hub(hooks(peer, "a"), dispatch=dispatch, watch=True)
    assert hub.revision >= 1

    async def recorded() -> bool:  # written by the watcher's task once the hub runs: no switch needed
        async with hub.store.read() as conn:
            rows = (await conn.execute(select(config_processes))).all()
        return [(r.owner, r.revision, r.problem) for r in rows] == [(hub.watcher.owner, hub.revision, None)]

    await eventually(recorded, timeout=2.0)


async def test_a_lane_retired_while_the_dispatcher_claims_is_no_error(
    make_hub: Any, peer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await make_hub(hooks(peer, "a", "b"))
    dispatcher = hub.dispatcher
    claim = outbox.claim

    async def claim_while_b_goes(*args: Any, **kwargs: Any) -> Any:
        # A switch to a revision without "b", while the claim's query runs.
        dispatcher.update([lane.notifier for name, lane in dispatcher.lanes.items() if name != "b"])
        return await claim(*args, **kwargs)

    monkeypatch.setattr(outbox, "claim", claim_while_b_goes)
    assert await dispatcher._claim_once(10) == 0
