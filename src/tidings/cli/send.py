"""Sending, previewing and reading the inbox."""

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import (
    ConfigOpt,
    JsonOpt,
    _hub,
    _on_hub,
    _when,
    app,
    cli_actor,
    emit,
    handled,
    out,
    print_json,
    run,
    waiting,
)
from ._common import table as make_table

if TYPE_CHECKING:
    from ..message import Message


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
ToOpt = Annotated[list[str] | None, typer.Option("--to", help="integration name or @recipient (repeatable); skips routing")]
PriorityOpt = Annotated[str, typer.Option("--priority", "-p", help="critical, high, medium, low or info")]
FormatOpt = Annotated[str, typer.Option("--format", help="plain, markdown or html")]
FieldOpt = Annotated[list[str] | None, typer.Option("--field", "-f", help="KEY=VALUE (repeatable)")]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE (repeatable)")]
LinkOpt = Annotated[list[str] | None, typer.Option("--link", help="LABEL=URL (repeatable)")]
ThreadOpt = Annotated[str | None, typer.Option("--thread-key")]
DedupOpt = Annotated[str | None, typer.Option("--dedup-key")]


def _message(title: str, body: str, priority: str, format: str, field: list[str] | None, label: list[str] | None,
             link: list[str] | None, thread_key: str | None, dedup_key: str | None) -> "Message":
    from ..message import Message

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
    at: Annotated[str | None, typer.Option("--at", help="schedule it: an ISO 8601 time with an offset, "
                                           "2026-12-24T09:00:00+01:00")] = None,
    in_: Annotated[str | None, typer.Option("--in", help="schedule it this long from now: 90s, 10m, 2h, 1d")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a message and print each outcome (--no-wait: only queue it; --at/--in: schedule it).

    By default it is delivered from this process and each outcome printed; with --no-wait it is only queued for a running server or worker.
    With --at or --in it is stored now and routed when due by a running server or worker (`tidings cancel ID` until then)."""
    import time

    from ..delivery.schedule import due_time
    from ..errors import MessageError

    message = _message(title, body, priority, format, field, label, link, thread_key, dedup_key)
    try:
        due = due_time(at, in_, time.time())
    except MessageError as exc:  # in the words of this command's options
        raise ValueError(str(exc).replace("send_at", "--at").replace("delay", "--in")) from None
    if due is not None:
        _schedule(config, message, to, at, in_, as_json)
        return

    async def _send() -> dict[str, Any]:
        async with _hub(config, create=True, dispatch=wait) as hub:
            receipt = await hub.notify(message, to=to, send_at=at, delay=in_)  # --at/--in in the past: now
            if wait:
                return await hub.wait(receipt.id, timeout)
            # DeliveryRef is a slots dataclass: it has no __dict__.
            return {"id": receipt.id, "deliveries": [dataclasses.asdict(d) for d in receipt.deliveries]}

    with waiting(f"sending, waiting up to {timeout:g}s for the outcomes...") if wait else contextlib.nullcontext():
        result = run(_send())

    def human() -> None:
        out.print(f"message {result['id']}", highlight=False)
        for d in result["deliveries"]:
            line = f"  {d['integration']}: {d['status']}"
            if d.get("last_error"):
                line += f" ({d['last_error']})"
            out.print(line, highlight=False)

    emit(result, as_json, human)
    failed = [d for d in result["deliveries"] if d["status"] == "dead"]
    if failed:
        raise typer.Exit(1)


def _schedule(config: Any, message: "Message", to: list[str] | None, at: str | None, delay: str | None,
              as_json: bool) -> None:
    from ..delivery.schedule import iso_time

    receipt = _on_hub(config, lambda hub: hub.notify(message, to=to, send_at=at, delay=delay, actor=cli_actor()),
                      create=True)
    result = {"id": receipt.id, "status": receipt.status, "send_at": receipt.send_at, "deliveries": []}
    emit(result, as_json, f"message {receipt.id} scheduled for {iso_time(receipt.send_at)} (tidings cancel {receipt.id})")


@app.command()
@handled
def cancel(message_id: Annotated[str, typer.Argument(help="an id or a unique start of one")],
           config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a scheduled message before it is due: it is never sent."""

    async def _cancel(hub: Any) -> dict[str, Any]:
        return await hub.cancel(await hub.resolve_id("message", message_id), actor=cli_actor())  # type: ignore[no-any-return]

    from ..delivery.schedule import iso_time

    result = _on_hub(config, _cancel)
    emit(result, as_json, f"message {result['id']} cancelled (it was due {iso_time(result['send_at'])})")


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
    """Render a message for each target without sending it, as JSON.

    Slack blocks, Teams card, email text and HTML...: what each target would be sent."""
    message = _message(title, body, priority, format, field, label, link, thread_key, dedup_key)

    print_json(_on_hub(config, lambda hub: hub.preview(message, to)))


@app.command()
@handled
def inbox(limit: Annotated[int, typer.Option(min=1, max=500)] = 20, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """What the inbox received, newest first."""

    page = _on_hub(config, lambda hub: hub.inbox(limit=limit))
    if as_json:
        print_json(page)
        return
    table = make_table("received", "priority", "title", "body", "fields", ids=())
    for item in page["items"]:
        m = item["message"]
        fields = ", ".join(f"{k}={v}" for k, v in m.get("fields", []))
        table.add_row(_when(item["received_at"]), m["priority"], m["title"], m["body"][:60], fields[:60])
    out.print(table)
