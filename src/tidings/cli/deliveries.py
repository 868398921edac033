"""Deliveries: list, show one, retry one or many."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, app, cli_actor, emit, group, handled, out, table

deliveries_app = group("deliveries", "Deliveries: list them, show one (`show ID`).", lists=True)
StatusOpt = Annotated[str | None, typer.Option(help="pending, sending, retrying, delivered, dead, suppressed, grouped")]
COLOURS = {"delivered": "green", "dead": "red", "retrying": "yellow", "suppressed": "dim"}


def _coloured(status: str) -> str:
    c = COLOURS.get(status, "")
    return f"[{c}]{status}[/{c}]" if c else status


def recipient_names(hub: Any, found: list[dict[str, Any]]) -> dict[str, str]:
    """Recipient id -> ``Ada Lovelace (@ada)`` for the deliveries' recipients (a deleted one: its id)."""
    names = {}
    for d in found:
        if (rid := d.get("recipient")) is not None:
            person = hub.directory.person(rid) if hub.directory is not None else None
            names[rid] = f"{person.display_name} (@{person.name})" if person is not None else f"{rid} (deleted)"
    return names


def _list(status: str | None, integration: str | None, limit: int, before: str | None, config: Any, as_json: bool) -> None:
    from ..delivery.queries import STATUSES

    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    page = _on_hub(config, lambda hub: hub.deliveries(status=status, integration=integration, limit=limit, before=before))

    def human() -> None:
        t = table("id", "integration", "status", "attempts", "updated", "title", "last error")
        for d in page["items"]:
            t.add_row(d["id"], d["integration"], _coloured(d["status"]), str(d["attempts"]),
                      _when(d["updated_at"]), d["title"][:40], (d["last_error"] or "")[:60])
        out.print(t)
        if page["next"]:
            out.print(f"more: --before {page['next']}", highlight=False)

    emit(page, as_json, human)


LimitOpt = Annotated[int, typer.Option(min=1, max=500)]
BeforeOpt = Annotated[str | None, typer.Option(help="next page: the id printed after the table")]


@deliveries_app.callback()
@handled
def deliveries(
    ctx: typer.Context,
    status: StatusOpt = None,
    integration: Annotated[str | None, typer.Option()] = None,
    limit: LimitOpt = 50,
    before: BeforeOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List deliveries, newest first (or `show ID`)."""
    if ctx.invoked_subcommand is None:
        _list(status, integration, limit, before, config, as_json)


@deliveries_app.command("list")
@handled
def deliveries_list(
    status: StatusOpt = None,
    integration: Annotated[str | None, typer.Option()] = None,
    limit: LimitOpt = 50,
    before: BeforeOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List deliveries, newest first."""
    _list(status, integration, limit, before, config, as_json)


@deliveries_app.command("show")
@handled
def deliveries_show(delivery_id: Annotated[str, typer.Argument(help="an id or a unique start of one")],
                    config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One delivery: status, attempts, last error, remote id, and the message it carries."""

    async def _show(hub: Any) -> tuple[dict[str, Any], dict[str, str]]:
        found = await hub.delivery(await hub.resolve_id("delivery", delivery_id))
        return found, recipient_names(hub, [found])

    d, names = _on_hub(config, _show)

    def human() -> None:
        m = d["message"]
        rows = [
            ("delivery", d["id"]), ("integration", d["integration"]), ("route", d["route"] or ""),
            ("recipient", names.get(d["recipient"] or "", "")), ("status", _coloured(d["status"])),
            ("why", d["reason"] or ""), ("attempts", str(d["attempts"])), ("created", _when(d["created_at"])),
            ("updated", _when(d["updated_at"])), ("next attempt", _when(d["next_attempt_at"])),
            ("delivered", _when(d["delivered_at"])),
            ("latency", f"{d['latency_ms']:.1f} ms" if d["latency_ms"] is not None else ""),
            ("remote id", d["remote_id"] or ""), ("last error", d["last_error"] or ""),
            ("message", m["id"]), ("title", m["title"]), ("priority", m["priority"]), ("body", m["body"]),
        ]
        for name, value in rows:
            if value:
                out.print(f"[bold]{name + ':':<13}[/bold] {value}", highlight=False, soft_wrap=True)
        if d.get("attempts_log"):
            t = table("#", "at", "outcome", "status", "latency", "error / remote id")
            for a in d["attempts_log"]:
                t.add_row(str(a["attempt"]), _when(a["at"]), _coloured({"retry": "retrying"}.get(a["outcome"], a["outcome"])),
                          str(a["status_code"] or ""), f"{a['latency_ms']:.1f} ms" if a["latency_ms"] is not None else "",
                          a["error"] or a["remote_id"] or "")
            out.print(t)

    emit(d, as_json, human)


def _retry(delivery_id: str | None, integration: str | None, status: str | None, since: str | None, config: Any,
          as_json: bool) -> None:
    bulk = integration is not None or status is not None or since is not None
    if delivery_id is not None and bulk:
        raise ValueError("give a delivery id or the filters (--integration, --status, --since), not both")
    if delivery_id is None and not bulk:
        raise ValueError("give a delivery id, or --integration/--status/--since to retry many")
    if delivery_id is not None:

        async def _one(hub: Any) -> dict[str, Any]:
            return await hub.retry(await hub.resolve_id("delivery", delivery_id), actor=cli_actor())

        d = _on_hub(config, _one)
        emit(d, as_json, f"delivery {d['id']} to {d['integration']} is {d['status']} again")
        return
    from ..units import parse_duration

    seconds = parse_duration(since) if since is not None else None
    actor = cli_actor()
    ids = _on_hub(config, lambda hub: hub.retry_many(status=status or "dead", integration=integration, since=seconds,
                                                     by=actor.name, actor=actor))
    emit({"retried": ids}, as_json, f"retried {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'}")


@app.command("retry")
@handled
def retry(
    delivery_id: Annotated[str | None, typer.Argument(help="an id or a unique start of one; or use the filters")] = None,
    integration: Annotated[str | None, typer.Option(help="bulk: every delivery of this integration...")] = None,
    status: Annotated[str | None, typer.Option(help="bulk: ...in this status (dead or retrying; default dead)")] = None,
    since: Annotated[str | None, typer.Option(help="bulk: ...last changed within this long (30m, 1h, 2d)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a dead (or waiting) delivery again now, or many: --integration slack --status dead."""
    _retry(delivery_id, integration, status, since, config, as_json)
