"""Schemathesis against the app in-process (ASGI), with a real token: every operation of the
OpenAPI document, with examples made from its schema (valid and invalid), must answer as the
document says (status, content type, headers, body) and never 500. All of schemathesis's checks
run, including "valid input is accepted" and "invalid input is rejected"."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import uuid
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tidings import Hub
from tidings.config import parse_config
from tidings.security.tokens import create_token
from tidings.security.vault import new_key, write_key_file
from tidings.server import create_app
from tidings.server.api import SilenceIn

INTEGRATIONS = ("inbox", "audit")
CONFIG = {
    "integrations": {
        "inbox": {"kind": "inbox"},
        "audit": {"kind": "inbox"},
        "gh": {"kind": "github", "secret": "s3cret-for-the-test"},
    },
    "routes": [{"name": "all", "match": {}, "to": ["inbox"]}],
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app on a fresh SQLite database (schemathesis starts its lifespan, and with it the hub,
    in its own event loop) and a token made beforehand on the same database."""
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    key = new_key()  # a vault, for PUT /secrets
    write_key_file(folder / "tidings.key", [key])
    config = parse_config({**CONFIG, "server": {"database": f"sqlite:///{folder / 'tidings.db'}"}}, env={})

    async def token() -> str:
        hub = Hub(config, config_dir=folder, dispatch=False)
        await hub.start()
        try:
            assert hub.store is not None
            return await create_token(hub.store, "schemathesis")
        finally:
            await hub.stop()

    value = asyncio.run(token())
    app = create_app(Hub(config, config_dir=folder, dispatch=False))
    yield schemathesis.openapi.from_asgi("/openapi.json", app), {"Authorization": f"Bearer {value}"}, key
    shutdown_lifespans()


EXAMPLES = int(os.environ.get("TIDINGS_SCHEMATHESIS_EXAMPLES", "6"))
"""Per operation and mode (valid, invalid): about 2,000 requests (TIDINGS_SCHEMATHESIS_EXAMPLES=25 for a
deeper search; 10 cost the suite 130-190 worker-seconds, its largest single item). The examples are the
same on every run (derandomized), so CI doesn't fail by chance."""


DURATION = re.compile(SilenceIn.model_json_schema()["properties"]["duration"]["pattern"])
"""The silence route's own check, stated in the schema."""


def _adjust(case: Any) -> None:
    """What a schema can't say: an Idempotency-Key is new for each request (reusing one for a
    different request is refused, by design), ``to`` names integrations that exist, and a valid
    silence lasts at most 30 days and a bulk retry's ``since`` is more than 0 (the pattern says only how
    a duration is written), and a message is scheduled within a year (see :func:`_timing`)."""
    if case.headers:
        case.headers = {k: (f"{v}-{uuid.uuid4().hex}" if k.lower() == "idempotency-key" and isinstance(v, str) else v)
                        for k, v in case.headers.items()}
    if isinstance(case.body, dict) and isinstance(case.body.get("to"), list) and case.body["to"]:
        case.body = {**case.body, "to": [INTEGRATIONS[i % len(INTEGRATIONS)] for i in range(len(case.body["to"]))]}
    if isinstance(case.body, dict) and isinstance(case.body.get("duration"), str) and DURATION.match(case.body["duration"]):
        case.body = {**case.body, "duration": "90m"}
    if isinstance(case.body, dict) and isinstance(case.body.get("since"), str) and DURATION.match(case.body["since"]):
        case.body = {**case.body, "since": "1h"}
    if isinstance(case.body, dict) and isinstance(case.body.get("expires"), str) and DURATION.match(case.body["expires"]):
        case.body = {**case.body, "expires": "90d"}  # a token's: more than 0s, at most 3650d
    if isinstance(case.body, dict) and (case.body.get("send_at") is not None or case.body.get("delay") is not None):
        case.body = _timing(case.body)


def _timing(body: dict[str, Any]) -> dict[str, Any]:
    """A message's schedule: ``send_at`` or ``delay``, not both, at most 366 days ahead, with an
    offset (which a date-time of the schema may lack)."""
    body = dict(body)
    send_at, delay = body.get("send_at"), body.get("delay")
    if isinstance(send_at, str):
        body.pop("delay", None)
        with contextlib.suppress(ValueError):
            dt.datetime.fromisoformat(send_at)
            body["send_at"] = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    elif isinstance(delay, int | float) and not isinstance(delay, bool) and delay >= 0 or \
            isinstance(delay, str) and DURATION.match(delay):
        body["delay"] = "10m"
    return body


def _config_write(operation: Any) -> bool:
    """A write of the configuration: whether its input is acceptable depends on the whole configuration (the
    integrations a route names, a kind's rules across fields, the current revision), which no schema states.
    A task's write likewise depends on the project (its members can be assigned, its tasks' status names), and a
    recipient's on what exists (IANA time zones, the project's members, recipients and groups by name), and a
    personal calendar feed on a user behind the token (this test's token belongs to nobody)."""
    tags = operation.definition.raw.get("tags") or []
    return bool({"configuration", "tasks", "recipients", "calendars"} & set(tags)) and operation.method.upper() != "GET"


SHARDS = 6
"""The operations in as many tests, which xdist's workers share (one test took minutes)."""


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_the_api_answers_as_its_openapi_document_says(api: Any, shard: int, tmp_path: Path) -> None:
    schema, auth, key = api
    # The app's lifespan (and with it the hub, which reads its key then) may start within any shard, where
    # TIDINGS_KEY_FILE names this test's folder (conftest's _no_secret_key): the same key there.
    write_key_file(tmp_path / "tidings.key", [key])
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations[shard::SHARDS]:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                                 suppress_health_check=list(hypothesis.HealthCheck))
            def check(case: Any) -> None:
                _adjust(case)
                if _config_write(operation):  # applied to whatever is current, so that writes happen
                    case.headers = {**(case.headers or {}), "If-Match": "*"}
                    case.call_and_validate(headers=auth, excluded_checks=[positive_data_acceptance])
                else:
                    case.call_and_validate(headers=auth)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing the schema forbids can be sent (no parameters)
            except BaseException as exc:  # every operation's findings at once, not just the first
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(f"--- {operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert not failures, "\n".join(failures)
