"""`tidings messages show ID`: a message with each delivery's outcome; `tidings ack ID`: take it in hand."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, app, cli_actor, emit, group, handled, out, table
from .deliveries import recipient_names

messages_app = group("messages", "Messages: show one with its deliveries (`show ID`).")


@messages_app.command("show")
@handled
def messages_show(message_id: Annotated[str, typer.Argument(help="an id or a unique start of one")],
                  config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One message: its content, its deliveries and their outcomes, its acknowledgements."""

    async def _show(hub: Any) -> tuple[dict[str, Any], dict[str, str]]:
        found = await hub.message(await hub.resolve_id("message", message_id))
        return found, recipient_names(hub, found["deliveries"])

    m, names = _on_hub(config, _show)

    def human() -> None:
        out.print(f"[bold]message[/bold] {m['id']}  {_when(m['created_at'])}  {m['priority']}", highlight=False)
        out.print(f"[bold]{m['title']}[/bold]", highlight=False)
        if m.get("send_at") is not None:
            why = f" by {m['cancelled_by']}" if m.get("cancelled_by") else (f": {m['reason']}" if m.get("reason") else "")
            from ..delivery.schedule import iso_time

            out.print(f"{m['status']} (send at {iso_time(m['send_at'])}){why}", highlight=False, markup=False)
        if m["body"]:
            out.print(m["body"], highlight=False, markup=False)
        t = table("id", "integration", "recipient", "status", "attempts", "updated", "why / last error")
        for d in m["deliveries"]:
            why = "; ".join(x for x in (d["reason"], d["last_error"]) if x)
            t.add_row(d["id"], d["integration"], names.get(d["recipient"] or "", ""), d["status"], str(d["attempts"]),
                      _when(d["updated_at"]), why)
        out.print(t)
        for e in m.get("escalations", []):
            due = f", next step {_when(e['due_at'])}" if e["due_at"] else ""
            out.print(f"escalation by route {e['route']}: {e['status']} after {e['step']} step(s){due}"
                      + (f" ({e['reason']})" if e["reason"] else ""), highlight=False, markup=False)

    emit(m, as_json, human)


@app.command("ack")
@handled
def ack(message_id: Annotated[str, typer.Argument(help="an id or a unique start of one")],
        config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Acknowledge a message: you took it in hand, its escalation stops (once: a second ack shows the first)."""
    actor = cli_actor()

    async def _ack(hub: Any) -> dict[str, Any]:
        full = await hub.resolve_id("message", message_id)
        held, created = await hub.ack(full, by=actor.name or "cli", via="cli", actor=actor)
        return {"message_id": full, **held, "created": created}

    a = _on_hub(config, _ack)
    said = "acknowledged" if a["created"] else "was already acknowledged"
    emit(a, as_json, f"message {a['message_id']} {said} by {a['by']} via {a['via']} at {_when(a['at'])}")
