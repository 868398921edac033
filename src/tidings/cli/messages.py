"""`tidings messages show ID`: a message with each delivery's outcome."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, emit, group, handled, out, table

messages_app = group("messages", "Messages: show one with its deliveries (`show ID`).")


@messages_app.command("show")
@handled
def messages_show(message_id: Annotated[str, typer.Argument(help="an id or a unique start of one")],
                  config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One message: its content, its deliveries and their outcomes, its acknowledgements."""

    async def _show(hub: Any) -> dict[str, Any]:
        return await hub.message(await hub.resolve_id("message", message_id))

    m = _on_hub(config, _show)

    def human() -> None:
        out.print(f"[bold]message[/bold] {m['id']}  {_when(m['created_at'])}  {m['priority']}", highlight=False)
        out.print(f"[bold]{m['title']}[/bold]", highlight=False)
        if m.get("send_at") is not None:
            why = f" by {m['cancelled_by']}" if m.get("cancelled_by") else (f": {m['reason']}" if m.get("reason") else "")
            from ..delivery.schedule import iso_time

            out.print(f"{m['status']} (send at {iso_time(m['send_at'])}){why}", highlight=False, markup=False)
        if m["body"]:
            out.print(m["body"], highlight=False, markup=False)
        t = table("id", "integration", "status", "attempts", "updated", "last error")
        for d in m["deliveries"]:
            t.add_row(d["id"], d["integration"], d["status"], str(d["attempts"]), _when(d["updated_at"]), d["last_error"] or "")
        out.print(t)

    emit(m, as_json, human)
