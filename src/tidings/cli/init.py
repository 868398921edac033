"""`tidings init`: a working project in one command."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _fail, _store, app, cli_actor, emit, handled, out, plain, print_once, run

if TYPE_CHECKING:
    from ..store.engine import Store

ADMIN_EMAIL = "admin@tidings.local"

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
    if_missing: Annotated[bool, typer.Option("--if-missing", help="when the config file exists, only create a missing site admin")] = False,
    database: Annotated[str, typer.Option(help="database URL to write into the new config")] = "sqlite:///./tidings.db",
    admin_email: Annotated[str, typer.Option("--admin-email", help="the first site admin's email (how they sign in)")] = ADMIN_EMAIL,
    as_json: JsonOpt = False,
) -> None:
    """Create tidings.yaml, the secret key, the database and the first site admin; print the admin's
    password and an API token once.

    The key file (tidings.key) is written with mode 0600; a demo notification goes to the inbox.
    Run again (--if-missing) it creates nothing, unless the database has no site admin yet: then it
    creates one, who adopts the tokens made before users existed."""
    from ..accounts.users import normalize_email
    from ..config import config_path
    from ..security.vault import KEY_ENV, key_file_path, new_key, write_key_file

    admin_email = normalize_email(plain(admin_email, "--admin-email"))
    path = config_path(config)
    if path.exists():
        if if_missing:
            _admin_if_missing(path, admin_email, as_json)
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
    admin, token, demo = run(_bootstrap(path, admin_email))
    data: dict[str, Any] = {"config": str(path), "created": True, "key_file": key_file, "admin": admin, "token": token,
                            "demo_message": demo}

    def human() -> None:
        for line in lines:
            out.print(line, highlight=False)
        _print_admin(admin)
        if token:
            print_once("Admin API token", token)
        else:
            out.print("the database already has API tokens: none created")
        if demo:
            out.print(f"demo notification delivered to the inbox: {demo}", highlight=False)

    emit(data, as_json, human)


def _print_admin(admin: dict[str, str] | None) -> None:
    if admin is None:
        out.print("the database already has a site admin: none created")
        return
    out.print(f"created the site admin {admin['email']}; sign in with the password below, change it with "
              f"`tidings user set-password {admin['email']}`", highlight=False)
    print_once(f"Password of {admin['email']}", admin["password"])


def _admin_if_missing(path: Path, email: str, as_json: bool) -> None:
    """`init --if-missing` on an existing installation: only a missing site admin is created."""

    async def _ensure() -> dict[str, str] | None:
        async with _store(path, create=True) as store:
            return await _first_admin(store, email)

    admin = run(_ensure())
    data = {"config": str(path), "created": False, "admin": admin}
    if admin is None:
        emit(data, as_json, f"{path} exists: nothing to initialise.")
        return

    def human() -> None:
        out.print(f"{path} exists; the database had no site admin:", highlight=False)
        _print_admin(admin)

    emit(data, as_json, human)


async def _first_admin(store: "Store", email: str) -> dict[str, str] | None:
    """Create the first site admin with a generated password, unless a site admin exists. Tokens
    made before users existed become theirs (``create_user``)."""
    from sqlalchemy import select

    from ..accounts.passwords import new_password
    from ..accounts.users import create_user
    from ..store.tables import users

    async with store.write() as conn:
        if (await conn.execute(select(users.c.id).where(users.c.site_admin.is_(True)).limit(1))).first():
            return None
        password = new_password()
        user = await create_user(conn, cli_actor(), email=email, name="Admin", password=password, site_admin=True)
    return {"email": user.email, "password": password}


async def _bootstrap(path: Path, admin_email: str) -> tuple[dict[str, str] | None, str | None, str | None]:
    from ..hub import Hub
    from ..message import Message, Priority
    from ..security.tokens import count_tokens, create_token

    async with Hub.from_config(path) as hub:
        assert hub.store is not None
        admin = await _first_admin(hub.store, admin_email)
        token = None
        if await count_tokens(hub.store) == 0:
            token = await create_token(hub.store, "admin", actor=cli_actor())  # the first site admin's
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
        return admin, token, message["id"]


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
