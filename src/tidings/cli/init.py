"""`tidings init`: a working project in one command."""

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _fail, app, emit, handled, out, run

EXAMPLE_CONFIG = """\
# tidings configuration. ${NAME} is read from the environment; ${vault:NAME} from the
# encrypted vault (`tidings secret set NAME`). Editors: `tidings config schema > tidings.schema.json`
# and add `# yaml-language-server: $schema=tidings.schema.json` on the first line.
server:
  host: 127.0.0.1
  port: 8400                        # $TIDINGS_PORT overrides
  database: {database}   # $TIDINGS_DATABASE_URL overrides; or postgresql://user@host/db
  body_limit: 1MiB

integrations:
  inbox:
    kind: inbox                     # keeps messages in the database: `tidings inbox`
  # ops-webhook:
  #   kind: webhook
  #   url: https://example.com/hooks/tidings
  #   secret: ${OPS_WEBHOOK_SECRET}   # whsec_...: signs with Standard Webhooks headers
  #   headers: {X-Team: ops}
  #   rate_limit: 10/second
  #   retry: {base: 5s, factor: 2, cap: 1h, max_attempts: 10, max_age: 24h}
  #   breaker: {failures: 5, cool_off: 30s}

routes:
  # - name: urgent-to-ops
  #   match: {priority: ">=high", labels: {service: [api, web]}}
  #   to: [ops-webhook]
  #   continue: true                # also try the routes below
  #   cooldown: 5m                  # same dedup_key within 5 minutes is suppressed

default:
  to: [inbox]

retention:                          # null keeps rows forever; nothing unsent is ever removed
  messages: 30d                     # sent messages, their deliveries, ended silences
  events: 30d                       # inbound webhooks once processed
  inbox: 30d
"""


@app.command()
@handled
def init(
    config: ConfigOpt = None,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="do nothing when the config file exists")] = False,
    database: Annotated[str, typer.Option(help="database URL to write into the new config")] = "sqlite:///./tidings.db",
    as_json: JsonOpt = False,
) -> None:
    """Create tidings.yaml, the secret key and the database; print an admin API token once.

    The key file (tidings.key) is written with mode 0600; a demo notification goes to the inbox."""
    from ..config import config_path
    from ..security.vault import KEY_ENV, key_file_path, new_key, write_key_file

    path = config_path(config)
    if path.exists():
        if if_missing:
            emit({"config": str(path), "created": False}, as_json, f"{path} exists: nothing to initialise.")
            return
        _fail(f"{path} exists; remove it or pass --if-missing")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_CONFIG.replace("{database}", database))
    lines = [f"wrote {path}"]
    key_path = key_file_path(path.resolve().parent)
    key_file: str | None = str(key_path)
    if os.environ.get(KEY_ENV):
        key_file = None
        lines.append(f"using the key in ${KEY_ENV}")
    elif key_path.exists():
        lines.append(f"kept the existing key {key_path}")
    else:
        write_key_file(key_path, [new_key()])
        lines.append(f"wrote {key_path} (mode 0600): back it up; without it stored secrets can't be read")
    lines.append(_audit_key(path.resolve().parent))
    token, demo = run(_bootstrap(path))
    data: dict[str, Any] = {"config": str(path), "created": True, "key_file": key_file, "token": token, "demo_message": demo}

    def human() -> None:
        for line in lines:
            out.print(line, highlight=False)
        if token:
            out.print("\n[bold]Admin API token (shown once, store it now):[/bold]")
            out.print(f"  {token}\n", highlight=False)
        else:
            out.print("the database already has API tokens: none created")
        if demo:
            out.print(f"demo notification delivered to the inbox: {demo}", highlight=False)

    emit(data, as_json, human)


async def _bootstrap(path: Path) -> tuple[str | None, str | None]:
    from ..hub import Hub
    from ..message import Message, Priority
    from ..security.tokens import count_tokens, create_token

    async with Hub.from_config(path) as hub:
        assert hub.store is not None
        token = None
        if await count_tokens(hub.store) == 0:
            token = await create_token(hub.store, "admin")
        receipt = await hub.notify(
            Message(
                "Welcome to tidings",
                "This demo notification went through the durable outbox to the built-in inbox.",
                priority=Priority.INFO,
                fields={"next": "tidings send --to inbox --title 'Hello'", "docs": "README.md"},
                labels={"source": "tidings", "event_type": "demo"},
            ),
            to=["inbox"],
        )
        message = await hub.wait(receipt.id, timeout=30)
        return token, message["id"]


def _audit_key(config_dir: Path) -> str:
    """Create the audit trail's signing key beside tidings.key (unless it exists or comes from the environment)."""
    from ..audit.checkpoints import KEY_ENV, key_path, load_signer

    if os.environ.get(KEY_ENV):
        return f"using the audit signing key in ${KEY_ENV}"
    path = key_path(config_dir)
    if path.exists():
        return f"kept the existing audit signing key {path}"
    load_signer(config_dir, create=True)
    return f"wrote {path} (mode 0600): signs the audit trail's checkpoints (`tidings audit public-key` for auditors)"
