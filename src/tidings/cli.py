"""The ``tidings`` command (Typer + Rich). Errors are one line and a non-zero exit code."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import config_path, config_schema, load_config
from .errors import ConfigError, TidingsError
from .hub import Hub
from .message import Message, Priority

if TYPE_CHECKING:
    from .security.vault import Vault
    from .store.engine import Store

app = typer.Typer(help="tidings: notifications out, verified webhooks in, durable in between.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
config_app = typer.Typer(help="Check the configuration or print its JSON Schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
keys_app = typer.Typer(help="The keys that encrypt stored secrets.", no_args_is_help=True)
secret_app = typer.Typer(help="Secrets stored encrypted in the database (use as ${vault:NAME}).", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
integrations_app = typer.Typer(help="Integrations: health, stats, test, enable, disable.", invoke_without_command=True)
events_app = typer.Typer(help="Inbound webhook events: history, details, replay.", invoke_without_command=True)
app.add_typer(config_app, name="config")
app.add_typer(token_app, name="token")
app.add_typer(keys_app, name="keys")
app.add_typer(secret_app, name="secret")
app.add_typer(db_app, name="db")
app.add_typer(integrations_app, name="integrations")
app.add_typer(events_app, name="events")
silences_app = typer.Typer(help="Silences: suppress matching messages for a while.", invoke_without_command=True)
app.add_typer(silences_app, name="silences")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="tidings.yaml (default: $TIDINGS_CONFIG or ./tidings.yaml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def handled(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn tidings' errors into one line on stderr and exit code 1 (2 for bad configuration)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                err.print(f"[red]error:[/red] {escape((exc.source + ': ') if exc.source else '')}{escape(problem)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (TidingsError, ValueError, OSError, TimeoutError) as exc:
            _fail(str(exc) or type(exc).__name__)
            raise  # unreachable: _fail exits

    return wrapper


def run(coro: Awaitable[T]) -> T:
    from .logs import configure

    configure(level=os.environ.get("TIDINGS_LOG_LEVEL", "WARNING"))
    return asyncio.run(coro)  # type: ignore[arg-type]


def _hub(config: Path | None, **kwargs: Any) -> Hub:
    return Hub.from_config(config, **kwargs)


def _on_hub(config: Path | None, call: Callable[[Hub], Awaitable[T] | T]) -> T:
    """``call(hub)`` on a hub started for this command without dispatching, stopped after."""

    async def _call() -> T:
        async with _hub(config, dispatch=False) as hub:
            result = call(hub)
            return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]

    return run(_call())


@contextlib.asynccontextmanager
async def _store(config: Path | None) -> AsyncIterator[Store]:
    """The configured database, migrated, without starting the integrations: managing tokens and
    secrets must work while tidings.yaml refers to a ${vault:NAME} that is not stored yet."""
    from .store.engine import Store

    cfg = load_config(config)
    store = Store(cfg.server.database, synchronous=cfg.server.sqlite_synchronous)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _vault(config: Path | None) -> AsyncIterator[Vault]:
    from .security.vault import Vault, load_keys

    async with _store(config) as store:
        yield Vault(store, load_keys(config_path(config).resolve().parent))


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# -- setup -----------------------------------------------------------------------------------
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
) -> None:
    """Create tidings.yaml, the secret key (tidings.key, mode 0600) and the database; print an
    admin API token once; deliver a demo notification to the inbox."""
    from .security.vault import KEY_ENV, key_file_path, new_key, write_key_file

    path = config_path(config)
    if path.exists():
        if if_missing:
            out.print(f"{path} exists: nothing to initialise.")
            return
        _fail(f"{path} exists; remove it or pass --if-missing")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_CONFIG.replace("{database}", database))
    out.print(f"wrote {path}")
    key_path = key_file_path(path.resolve().parent)
    if os.environ.get(KEY_ENV):
        out.print(f"using the key in ${KEY_ENV}")
    elif key_path.exists():
        out.print(f"kept the existing key {key_path}")
    else:
        write_key_file(key_path, [new_key()])
        out.print(f"wrote {key_path} (mode 0600): back it up; without it stored secrets can't be read")
    token, demo = run(_bootstrap(path))
    if token:
        out.print("\n[bold]Admin API token (shown once, store it now):[/bold]")
        out.print(f"  {token}\n", highlight=False)
    else:
        out.print("the database already has API tokens: none created")
    if demo:
        out.print(f"demo notification delivered to the inbox: {demo}")


async def _bootstrap(path: Path) -> tuple[str | None, str | None]:
    from .security.tokens import count_tokens, create_token

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


@app.command()
@handled
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="overrides server.host")] = None,
    port: Annotated[int | None, typer.Option(help="overrides server.port and $TIDINGS_PORT")] = None,
    dispatch: Annotated[bool, typer.Option("--dispatch/--no-dispatch", help="run the dispatcher in this process")] = True,
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
) -> None:
    """Run the HTTP server (API, /docs, /metrics) and, unless --no-dispatch, the dispatcher."""
    import uvicorn

    from .logs import configure
    from .server import create_app
    from .server.access import with_access_log

    configure()
    hub = _hub(config, dispatch=None if dispatch else False)
    s = hub.config.server
    err.print(f"tidings {__version__} on http://{host or s.host}:{port or s.port} (docs at /docs)", highlight=False)
    _freeze_heap()
    uvicorn.run(
        with_access_log(create_app(hub), access_log),
        host=host or s.host,
        port=port or s.port,
        access_log=False,  # tidings' own (server/access.py): structured, on stderr, no query strings
        log_level="warning",
        timeout_graceful_shutdown=int(hub.config.dispatcher.shutdown_timeout) + 1,
    )


def _freeze_heap() -> None:
    """Exempt what start-up built (modules, models, compiled SQL) from the cyclic garbage
    collector. A full collection scans the whole heap: measured here, 60-230 ms with the loop
    stopped, the worst latency of a busy server. Afterwards it scans only what came later."""
    import gc

    gc.collect()
    gc.freeze()


@app.command()
@handled
def worker(config: ConfigOpt = None) -> None:
    """Run only the dispatcher: claim and send deliveries. Run as many as you like on PostgreSQL."""
    import signal

    from .logs import configure

    configure()
    _freeze_heap()

    async def _main() -> None:
        hub = _hub(config, dispatch=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with hub:
            err.print(f"tidings worker {hub.dispatcher.owner if hub.dispatcher else ''} started", highlight=False)
            await stop.wait()

    asyncio.run(_main())


# -- sending and looking -------------------------------------------------------------------------
def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r}: write KEY=VALUE")
        pairs[key] = value
    return pairs


TitleOpt = Annotated[str, typer.Option("--title", "-t")]
BodyOpt = Annotated[str, typer.Option("--body", "-b")]
ToOpt = Annotated[list[str] | None, typer.Option("--to", help="integration name (repeatable); skips routing")]
PriorityOpt = Annotated[str, typer.Option("--priority", "-p", help="critical, high, medium, low or info")]
FormatOpt = Annotated[str, typer.Option("--format", help="plain, markdown or html")]
FieldOpt = Annotated[list[str] | None, typer.Option("--field", "-f", help="KEY=VALUE (repeatable)")]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE (repeatable)")]
LinkOpt = Annotated[list[str] | None, typer.Option("--link", help="LABEL=URL (repeatable)")]
ThreadOpt = Annotated[str | None, typer.Option("--thread-key")]
DedupOpt = Annotated[str | None, typer.Option("--dedup-key")]


def _message(title: str, body: str, priority: str, format: str, field: list[str] | None, label: list[str] | None,
             link: list[str] | None, thread_key: str | None, dedup_key: str | None) -> Message:
    return Message(
        title,
        body,
        priority=priority,
        format=format,
        fields=_pairs(field, "--field"),
        labels=_pairs(label, "--label"),
        links=[{"label": k, "url": v} for k, v in _pairs(link, "--link").items()],
        thread_key=thread_key,
        dedup_key=dedup_key,
    )


@app.command()
@handled
def send(
    title: TitleOpt,
    body: BodyOpt = "",
    to: ToOpt = None,
    priority: PriorityOpt = "medium",
    format: FormatOpt = "plain",
    field: FieldOpt = None,
    label: LabelOpt = None,
    link: LinkOpt = None,
    thread_key: ThreadOpt = None,
    dedup_key: DedupOpt = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="deliver now and report each outcome")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the outcomes")] = 30.0,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a message. By default it is delivered from this process and each outcome printed;
    with --no-wait it is only queued for a running server or worker."""
    message = _message(title, body, priority, format, field, label, link, thread_key, dedup_key)

    async def _send() -> dict[str, Any]:
        async with _hub(config, dispatch=wait) as hub:
            receipt = await hub.notify(message, to=to)
            if wait:
                return await hub.wait(receipt.id, timeout)
            # DeliveryRef is a slots dataclass: it has no __dict__.
            return {"id": receipt.id, "deliveries": [dataclasses.asdict(d) for d in receipt.deliveries]}

    result = run(_send())
    if as_json:
        _print_json(result)
    else:
        out.print(f"message {result['id']}", highlight=False)
        for d in result["deliveries"]:
            line = f"  {d['integration']}: {d['status']}"
            if d.get("last_error"):
                line += f" ({d['last_error']})"
            out.print(line, highlight=False)
    failed = [d for d in result["deliveries"] if d["status"] == "dead"]
    if failed:
        raise typer.Exit(1)


@app.command()
@handled
def preview(
    title: TitleOpt,
    body: BodyOpt = "",
    to: ToOpt = None,
    priority: PriorityOpt = "medium",
    format: FormatOpt = "plain",
    field: FieldOpt = None,
    label: LabelOpt = None,
    link: LinkOpt = None,
    thread_key: ThreadOpt = None,
    dedup_key: DedupOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Render a message for each target without sending it (Slack blocks, Teams card, email
    text and HTML...), as JSON."""
    message = _message(title, body, priority, format, field, label, link, thread_key, dedup_key)

    _print_json(_on_hub(config, lambda hub: hub.preview(message, to)))


@app.command()
@handled
def deliveries(
    status: Annotated[str | None, typer.Option(help="pending, sending, retrying, delivered, dead, suppressed")] = None,
    integration: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    before: Annotated[str | None, typer.Option(help="next page: the id printed after the table")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List deliveries, newest first."""
    from .delivery.queries import STATUSES

    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")

    page = _on_hub(config, lambda hub: hub.deliveries(status=status, integration=integration, limit=limit, before=before))
    if as_json:
        _print_json(page)
        return
    table = Table("id", "integration", "status", "attempts", "updated", "title", "last error", show_lines=False)
    colours = {"delivered": "green", "dead": "red", "retrying": "yellow", "suppressed": "dim"}
    for d in page["items"]:
        c = colours.get(d["status"], "")
        table.add_row(d["id"], d["integration"], f"[{c}]{d['status']}[/{c}]" if c else d["status"], str(d["attempts"]),
                      _when(d["updated_at"]), d["title"][:40], (d["last_error"] or "")[:60])
    out.print(table)
    if page["next"]:
        out.print(f"more: --before {page['next']}", highlight=False)


@app.command()
@handled
def retry(delivery_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Queue a dead (or waiting) delivery again now, with a fresh retry budget."""

    d = _on_hub(config, lambda hub: hub.retry(delivery_id))
    if as_json:
        _print_json(d)
    else:
        out.print(f"delivery {d['id']} to {d['integration']} is {d['status']} again", highlight=False)


@app.command()
@handled
def inbox(limit: Annotated[int, typer.Option(min=1, max=500)] = 20, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """What the inbox received, newest first."""

    page = _on_hub(config, lambda hub: hub.inbox(limit=limit))
    if as_json:
        _print_json(page)
        return
    table = Table("received", "priority", "title", "body", "fields")
    for item in page["items"]:
        m = item["message"]
        fields = ", ".join(f"{k}={v}" for k, v in m.get("fields", []))
        table.add_row(_when(item["received_at"]), m["priority"], m["title"], m["body"][:60], fields[:60])
    out.print(table)


@integrations_app.callback()
@handled
def integrations(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Each integration with its health and stats."""
    if ctx.invoked_subcommand is not None:
        return

    items = _on_hub(config, lambda hub: hub.integrations())
    if as_json:
        _print_json(items)
        return
    table = Table("name", "kind", "health", "sent", "failed", "suppressed", "success", "p95 ms", "last error")
    for i in items:
        s = i["stats"]
        rate = f"{s['success_rate']:.1f}%" if s["success_rate"] is not None else "-"
        p95 = f"{s['latency_p95_ms']:.0f}" if s["latency_p95_ms"] is not None else "-"
        table.add_row(i["name"], i["kind"], i["health"], str(s["sent"]), str(s["failed"]), str(s["suppressed"]), rate, p95,
                      (s["last_error"] or "")[:50])
    out.print(table)


@integrations_app.command("test")
@handled
def integrations_test(name: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check an integration now and print what its peer answered."""

    outcome = _on_hub(config, lambda hub: hub.test(name))
    data = {"integration": name, "ok": outcome.ok, "status": outcome.status.value, "remote_id": outcome.remote_id, "error": outcome.error}
    if as_json:
        _print_json(data)
    else:
        out.print(f"{name}: {outcome.status.value}" + (f" ({outcome.error})" if outcome.error else ""), highlight=False)
    if not outcome.ok:
        raise typer.Exit(1)


def _set_enabled(name: str, enabled: bool, config: Path | None) -> None:
    _on_hub(config, lambda hub: hub.set_enabled(name, enabled))
    out.print(f"{name} {'enabled' if enabled else 'disabled'}")


@integrations_app.command("enable")
@handled
def integrations_enable(name: str, config: ConfigOpt = None) -> None:
    """Enable an integration again (after its peer answered 410 Gone, or a disable)."""
    _set_enabled(name, True, config)


@integrations_app.command("disable")
@handled
def integrations_disable(name: str, config: ConfigOpt = None) -> None:
    """Stop sending to an integration; its deliveries wait until it is enabled."""
    _set_enabled(name, False, config)


@events_app.callback()
@handled
def events(
    ctx: typer.Context,
    integration: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="received, processing, processed, ignored, unsupported, failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    before: Annotated[str | None, typer.Option(help="next page: the id printed after the table")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Inbound events, newest first, each with its processing result or error."""
    from .inbound import EVENT_STATUSES

    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in EVENT_STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(EVENT_STATUSES)}")

    page = _on_hub(config, lambda hub: hub.event_list(integration=integration, status=status, limit=limit, before=before))
    if as_json:
        _print_json(page)
        return
    table = Table("id", "integration", "event", "status", "attempts", "received", "result / error")
    colours = {"processed": "green", "failed": "red", "received": "yellow", "ignored": "dim", "unsupported": "dim"}
    for e in page["items"]:
        c = colours.get(e["status"], "")
        outcome = e["last_error"] or (json.dumps(e["result"]) if e["result"] else "")
        table.add_row(e["id"], e["integration"], e["event_type"], f"[{c}]{e['status']}[/{c}]" if c else e["status"],
                      str(e["attempts"]), _when(e["received_at"]), outcome[:60])
    out.print(table)
    if page["next"]:
        out.print(f"more: --before {page['next']}", highlight=False)


@events_app.command("show")
@handled
def events_show(event_id: str, config: ConfigOpt = None) -> None:
    """One event with the headers and body received (as JSON)."""

    _print_json(_on_hub(config, lambda hub: hub.event(event_id)))


@events_app.command("replay")
@handled
def events_replay(event_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Process an event again (a running server or worker picks it up)."""

    e = _on_hub(config, lambda hub: hub.replay(event_id))
    if as_json:
        _print_json(e)
    else:
        out.print(f"event {e['id']} ({e['event_type']}) is {e['status']} again", highlight=False)


@silences_app.callback()
@handled
def silences_list(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The active silences."""
    if ctx.invoked_subcommand is not None:
        return

    items = [s.to_dict() for s in _on_hub(config, lambda hub: hub.active_silences())]
    if as_json:
        _print_json(items)
        return
    table = Table("id", "matchers", "until", "by", "reason")
    for s in items:
        matchers = ",".join(f"{k}={v}" for k, v in s["matchers"].items())
        table.add_row(s["id"], matchers, _when(s["until"]), s["created_by"], s["reason"] or "")
    out.print(table)


@silences_app.command("add")
@handled
def silences_add(
    matchers: Annotated[list[str], typer.Argument(help="label=value (all must match); one bare word means source=WORD")],
    duration: Annotated[str, typer.Option("--for", help="how long: 30m, 2h, 1d (at most 30d)")],
    reason: Annotated[str | None, typer.Option(help="shown beside the silence")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppress new messages whose labels match for a while (a running server applies it within seconds)."""
    from .silences import parse_matchers, parse_silence_duration

    parsed, seconds = parse_matchers(matchers), parse_silence_duration(duration)
    by = f"cli:{os.environ.get('USER') or 'unknown'}"

    silence, _ = _on_hub(config, lambda hub: hub.silence(parsed, seconds, by=by, reason=reason))
    s = silence.to_dict()
    if as_json:
        _print_json(s)
    else:
        out.print(f"silence {s['id']} until {_when(s['until'])}", highlight=False)


@silences_app.command("end")
@handled
def silences_end(silence_id: str, config: ConfigOpt = None) -> None:
    """End a silence now (its id, or a unique start of it)."""

    if _on_hub(config, lambda hub: hub.unsilence(silence_id)) is None:
        _fail(f"no active silence {silence_id!r}")
    out.print(f"ended silence {silence_id}", highlight=False)


# -- configuration ---------------------------------------------------------------------------
@config_app.command("validate")
@handled
def config_validate(config: ConfigOpt = None) -> None:
    """Check tidings.yaml: one line per problem, with its path; exit code 2 when invalid."""
    cfg = load_config(config, required=True)
    out.print(f"{config_path(config)}: ok ({len(cfg.integrations)} integrations, {len(cfg.routes)} routes)", highlight=False)


@config_app.command("schema")
def config_schema_cmd() -> None:
    """Print the JSON Schema of tidings.yaml (for editor completion)."""
    sys.stdout.write(json.dumps(config_schema(), indent=2) + "\n")


# -- tokens, keys, secrets, database -----------------------------------------------------------------
@token_app.command("create")
@handled
def token_create(name: Annotated[str, typer.Option("--name", help="who or what uses it")], config: ConfigOpt = None) -> None:
    """Create an API token and print it (the only time it is shown)."""
    from .security.tokens import create_token

    async def _create() -> str:
        async with _store(config) as store:
            return await create_token(store, name)

    sys.stdout.write(run(_create()) + "\n")


@token_app.command("list")
@handled
def token_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """API tokens (never their values)."""
    from .security.tokens import list_tokens

    async def _list() -> list[dict[str, Any]]:
        async with _store(config) as store:
            return await list_tokens(store)

    items = run(_list())
    if as_json:
        _print_json(items)
        return
    table = Table("name", "role", "created", "revoked")
    for t in items:
        table.add_row(str(t["name"]), str(t["role"]), _when(t["created_at"]), _when(t["revoked_at"]))  # type: ignore[arg-type]
    out.print(table)


@token_app.command("revoke")
@handled
def token_revoke(name: str, config: ConfigOpt = None) -> None:
    """Revoke every token with this name (effective within 10 s on running servers)."""
    from .security.tokens import revoke_token

    async def _revoke() -> int:
        async with _store(config) as store:
            return await revoke_token(store, name)

    n = run(_revoke())
    if not n:
        _fail(f"no active token named {name!r}")
    out.print(f"revoked {n} token(s) named {name}")


@keys_app.command("rotate")
@handled
def keys_rotate(config: ConfigOpt = None) -> None:
    """Add a new primary key and re-encrypt every stored secret with it."""
    from .security.vault import KEY_ENV, key_file_path, new_key, write_key_file

    fresh = new_key()
    path = config_path(config)
    key_file = key_file_path(path.resolve().parent)

    async def _rotate() -> tuple[int, list[str]]:
        async with _vault(config) as vault:
            if not vault.available:
                raise ValueError(f"no key to rotate: set ${KEY_ENV} or run `tidings init`")
            count = await vault.rotate(fresh)
            return count, vault.keys or []

    count, keys = run(_rotate())
    if os.environ.get(KEY_ENV):
        out.print(f"re-encrypted {count} secret(s). Set this in the environment of every tidings process:")
        sys.stdout.write(f"{KEY_ENV}={','.join(keys)}\n")
        return
    write_key_file(key_file, keys)
    out.print(f"re-encrypted {count} secret(s) with a new key; {key_file} holds it (older keys kept for reading)")


@secret_app.command("set")
@handled
def secret_set(
    name: str,
    value: Annotated[str | None, typer.Option(help="the value; omit to read it from stdin or a prompt")] = None,
    config: ConfigOpt = None,
) -> None:
    """Store a secret encrypted; refer to it in tidings.yaml as ${vault:NAME}."""
    if value is None:
        value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(name, hide_input=True)
    if not value:
        raise ValueError("the secret is empty")

    async def _set() -> None:
        async with _vault(config) as vault:
            await vault.set(name, value)

    run(_set())
    out.print(f"stored {name}; use it as ${{vault:{name}}}", highlight=False)


@secret_app.command("list")
@handled
def secret_list(config: ConfigOpt = None) -> None:
    """Names of stored secrets (never their values)."""

    async def _list() -> list[str]:
        async with _vault(config) as vault:
            return await vault.names()

    for name in run(_list()):
        out.print(name, highlight=False)


@secret_app.command("delete")
@handled
def secret_delete(name: str, config: ConfigOpt = None) -> None:
    async def _delete() -> bool:
        async with _vault(config) as vault:
            return await vault.delete(name)

    if not run(_delete()):
        _fail(f"no secret named {name!r}")
    out.print(f"deleted {name}")


@db_app.command("upgrade")
@handled
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply the database migrations (also done at every start)."""
    from .store.migrate import current

    async def _upgrade() -> str | None:
        async with _store(config) as store:
            return await current(store)

    out.print(f"database at revision {run(_upgrade())}", highlight=False)


@db_app.command("prune")
@handled
def db_prune(
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, delete nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove now what `retention` no longer keeps (a dispatching hub also does it every hour)."""
    counts = _on_hub(config, lambda hub: hub.prune(dry_run=dry_run))
    if as_json:
        _print_json(counts)
        return
    if not counts:
        out.print("retention keeps everything (every period is null)")
        return
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb}: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()), highlight=False)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)
