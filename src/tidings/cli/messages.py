"""`tidings messages show ID`: a message with each delivery's outcome."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, emit, group, handled, out, table
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
        if m["body"]:
            out.print(m["body"], highlight=False, markup=False)
        t = table("id", "integration", "recipient", "status", "attempts", "updated", "why / last error")
        for d in m["deliveries"]:
            why = "; ".join(x for x in (d["reason"], d["last_error"]) if x)
            t.add_row(d["id"], d["integration"], names.get(d["recipient"] or "", ""), d["status"], str(d["attempts"]),
                      _when(d["updated_at"]), why)
        out.print(t)

    emit(m, as_json, human)
