"""`tidings ack ID`: acknowledge a message from the terminal; its escalation stops."""

from __future__ import annotations

from cli_support import Project, tidings


def escalating(project: Project) -> None:
    path = project.path / "tidings.yaml"
    text = path.read_text()
    assert "default:\n  to: [inbox]\n" in text
    path.write_text(text.replace("default:\n  to: [inbox]\n",
                                 "default:\n  to: [inbox]\n  escalation:\n    steps: [{after: 10m, to: [inbox]}]\n"))


def test_ack_records_once_and_stops_the_escalation(project: Project) -> None:
    escalating(project)
    p = project.path
    sent = tidings(p, "send", "--title", "db down", "-p", "critical", "--json").ok().json
    message_id = sent["id"]
    assert tidings(p, "messages", "show", message_id, "--json").ok().json["escalation"]["status"] == "waiting"

    acked = tidings(p, "ack", message_id[:-4], "--json").ok().json
    assert acked["message_id"] == message_id and acked["created"] is True
    assert acked["via"] == "cli" and acked["by"].startswith("cli:")
    again = tidings(p, "ack", message_id, "--json").ok().json
    assert again["created"] is False and again["at"] == acked["at"]
    assert "was already acknowledged" in tidings(p, "ack", message_id).ok().out

    shown = tidings(p, "messages", "show", message_id, "--json").ok().json
    assert shown["escalation"]["status"] == "stopped"
    assert shown["escalation"]["reason"].startswith(f"acknowledged by {acked['by']} via cli at ")
    assert "escalation by route default: stopped" in tidings(p, "messages", "show", message_id).ok().out


def test_ack_of_an_unknown_message_is_a_one_line_error(project: Project) -> None:
    ran = tidings(project.path, "ack", "0190f4c2-7d1e-7a00-8000-000000000001")
    assert ran.code != 0
    ran.one_line_error("0190f4c2")
