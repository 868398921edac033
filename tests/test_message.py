"""The domain object: what makes a valid message, how it keeps its shape, and its round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from tidings import Field, Format, Link, Message, MessageError, Priority
from tidings.message import BODY_MAX, FIELDS_MAX, LABEL_VALUE_MAX, LABELS_MAX, LINKS_MAX, TITLE_MAX


def problems(**data: Any) -> list[str]:
    with pytest.raises(MessageError) as info:
        Message(**data)
    assert isinstance(info.value, ValueError), "MessageError is a ValueError too"
    return info.value.problems


def test_the_smallest_message() -> None:
    m = Message("Deploy finished")
    assert m.title == "Deploy finished"
    assert m.body == "" and m.priority is Priority.MEDIUM and m.format is Format.PLAIN
    assert m.fields == () and m.links == () and m.labels == {}
    assert m.thread_key is None and m.dedup_key is None and m.resolves is False
    assert Message("t", "b").body == "b"
    assert Message(title="t", body="b") == Message("t", "b")


def test_title_is_stripped_and_must_not_be_empty() -> None:
    assert Message("  padded  ").title == "padded"
    for blank in ("", "   ", "\n\t"):
        assert problems(title=blank) == ["title: must not be empty"]
    assert problems() == ["title: Field required"]
    assert problems(body="no title")[0].startswith("title:")
    assert problems(title=5)[0].startswith("title:")


@pytest.mark.parametrize("bad", ["urgent", "", "HIGHEST", "p1"])
def test_unknown_priority_names_the_choices(bad: str) -> None:
    (line,) = problems(title="x", priority=bad)
    assert line.startswith("priority: unknown priority")
    assert repr(bad) in line
    assert "critical, high, medium, low, info" in line


def test_priority_and_format_accept_any_case_and_spaces() -> None:
    assert Message("x", priority=" HIGH ").priority is Priority.HIGH
    assert Message("x", priority=Priority.LOW).priority is Priority.LOW
    assert Message("x", format="Markdown").format is Format.MARKDOWN
    (line,) = problems(title="x", format="rtf")
    assert line.startswith("format: unknown format 'rtf'")
    assert problems(title="x", priority=3)[0].startswith("priority:")


def test_sizes_are_limited() -> None:
    Message("t" * TITLE_MAX, "b" * BODY_MAX)
    (line,) = problems(title="t" * (TITLE_MAX + 1))
    assert line.startswith("title:") and str(TITLE_MAX) in line
    (line,) = problems(title="x", body="b" * (BODY_MAX + 1))
    assert line.startswith("body:") and str(BODY_MAX) in line
    (line,) = problems(title="x", thread_key="k" * 501)
    assert line.startswith("thread_key:")
    (line,) = problems(title="x", dedup_key="k" * 501)
    assert line.startswith("dedup_key:")


def test_fields_and_labels_and_links_are_counted() -> None:
    Message("x", fields={f"f{i}": "v" for i in range(FIELDS_MAX)})
    (line,) = problems(title="x", fields={f"f{i}": "v" for i in range(FIELDS_MAX + 1)})
    assert line.startswith("fields:") and str(FIELDS_MAX) in line
    Message("x", labels={f"l{i}": "v" for i in range(LABELS_MAX)})
    (line,) = problems(title="x", labels={f"l{i}": "v" for i in range(LABELS_MAX + 1)})
    assert line == f"labels: at most {LABELS_MAX} labels"
    links = [{"label": f"l{i}", "url": "https://example.com"} for i in range(LINKS_MAX + 1)]
    assert problems(title="x", links=links)[0].startswith("links:")
    (line,) = problems(title="x", labels={"k": "v" * (LABEL_VALUE_MAX + 1)})
    assert line.startswith("labels:") and "longer than" in line
    assert problems(title="x", fields=[("name", "v" * 4001)])[0].startswith("fields[0]")
    assert problems(title="x", fields=[("", "v")])[0].startswith("fields[0]")


@pytest.mark.parametrize("name", ["1st", "has space", "", "-dash", "ü", "a/b", "x" * 101, "a:b"])
def test_bad_label_names(name: str) -> None:
    (line,) = problems(title="x", labels={name: "v"})
    assert line.startswith("labels: label name")
    assert repr(name) in line


@pytest.mark.parametrize("name", ["source", "event_type", "_private", "app.kubernetes.io-name", "A1", "x" * 100])
def test_good_label_names(name: str) -> None:
    assert Message("x", labels={name: "v"}).labels == {name: "v"}


def test_label_values_become_text() -> None:
    m = Message("x", labels={"n": 3, "f": 1.5, "yes": True, "no": False, "none": None})
    assert m.labels == {"n": "3", "f": "1.5", "yes": "true", "no": "false", "none": ""}
    assert m.source is None
    assert Message("x", labels={"source": "ci"}).source == "ci"


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://example.com/f", "example.com", "/relative", "http://", "https:example.com", "http:///path",
     "https://a b", "", "data:text/html,x", "mailto:"],
)
def test_links_must_be_http_or_mailto(url: str) -> None:
    lines = problems(title="x", links=[{"label": "docs", "url": url}])
    assert lines and lines[0].startswith("links[0].url:"), lines


@pytest.mark.parametrize(
    "url", ["https://example.com", "http://localhost:8080/a?b=c#d", "HTTPS://EXAMPLE.COM/X", "https://[::1]/x",
            "mailto:ops@example.com", "https://example.com?q=1"]
)
def test_http_and_mailto_links_are_accepted(url: str) -> None:
    assert Message("x", links=[{"label": "l", "url": url}]).links[0].url == url


def test_good_links_in_both_forms() -> None:
    m = Message("x", links=[{"label": "Runbook", "url": "https://example.com/rb"}, ("Mail", "mailto:ops@example.com"),
                            Link("Plain", "http://example.com")])
    assert m.links == (Link("Runbook", "https://example.com/rb"), Link("Mail", "mailto:ops@example.com"),
                       Link("Plain", "http://example.com"))
    assert problems(title="x", links=[{"label": "", "url": "https://example.com"}])[0].startswith("links[0]")


@pytest.mark.parametrize("key", ["thread_key", "dedup_key"])
@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_blank_thread_and_dedup_keys_are_refused(key: str, value: str) -> None:
    (line,) = problems(title="x", **{key: value})
    assert key in line and "blank" in line


def test_unknown_keywords_are_refused() -> None:
    (line,) = problems(title="x", colour="red")
    assert line == "colour: Extra inputs are not permitted"


def test_nul_characters_are_refused_everywhere() -> None:
    """PostgreSQL can't store U+0000 in text: the message refuses it on every database alike."""
    cases = [
        ({"title": "a\x00b"}, "title:"),
        ({"title": "x", "body": "\x00"}, "body:"),
        ({"title": "x", "thread_key": "k\x00"}, "thread_key:"),
        ({"title": "x", "dedup_key": "\x00k"}, "dedup_key:"),
        ({"title": "x", "labels": {"source": "a\x00"}}, "labels.source:"),
        ({"title": "x", "fields": {"host": "a\x00"}}, "fields[0]:"),
        ({"title": "x", "links": [("a\x00", "https://example.com")]}, "links[0]:"),
    ]
    for data, prefix in cases:
        lines = problems(**data)
        assert lines[0].startswith(prefix) and "NUL" in lines[0], (data, lines)


def test_every_problem_is_reported_once_with_its_path() -> None:
    with pytest.raises(MessageError) as info:
        Message(title="", priority="nope", colour="red", links=[{"label": "a", "url": "ftp://x"}])
    lines = info.value.problems
    assert len(lines) == 4
    assert {line.split(":")[0] for line in lines} == {"title", "priority", "colour", "links[0].url"}
    # The exception text is the same lines, joined.
    assert str(info.value) == "; ".join(lines)


def test_fields_keep_their_order_from_a_dict_and_from_a_list() -> None:
    names = ["zeta", "alpha", "mid", "beta", "omega"]
    from_dict = Message("x", fields={n: f"v-{n}" for n in names})
    from_list = Message("x", fields=[(n, f"v-{n}") for n in names])
    from_lists = Message("x", fields=[[n, f"v-{n}"] for n in names])
    from_objects = Message("x", fields=[Field(n, f"v-{n}") for n in names])
    for m in (from_dict, from_list, from_lists, from_objects):
        assert [f.name for f in m.fields] == names
        assert m.fields[0] == Field("zeta", "v-zeta")
        assert m.field_map() == {n: f"v-{n}" for n in names}
    assert Message("x", fields={"n": 1, "b": True, "z": None}).fields == (Field("n", "1"), Field("b", "true"), Field("z", ""))


def test_repeated_field_names_are_kept_in_list_form() -> None:
    m = Message("x", fields=[("host", "a"), ("host", "b")])
    assert [f.value for f in m.fields] == ["a", "b"]


def test_priority_rank_orders_urgency() -> None:
    order = [Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW, Priority.INFO]
    assert [p.rank for p in order] == [0, 1, 2, 3, 4]
    assert sorted(Priority, key=lambda p: p.rank) == order
    assert all(Priority.from_rank(p.rank) is p for p in Priority)
    assert Priority.CRITICAL.rank < Priority.INFO.rank
    assert str(Priority.HIGH) == "high" and str(Format.HTML) == "html"


def test_messages_are_frozen() -> None:
    m = Message("x")
    with pytest.raises(ValidationError):
        m.title = "y"  # type: ignore[misc]


def full_message() -> Message:
    return Message(
        "Disk almost full",
        "**/var** is at 93%",
        priority="critical",
        format="markdown",
        fields={"host": "web-01", "used": "93%", "zone": "eu-1"},
        links=[{"label": "Dashboard", "url": "https://grafana.example.com/d/1"}],
        labels={"source": "prometheus", "service": "api", "severity": "page"},
        thread_key="disk:web-01",
        dedup_key="disk:web-01:93",
        resolves=True,
    )


def test_to_dict_is_json_ready() -> None:
    d = full_message().to_dict()
    assert d == {
        "title": "Disk almost full",
        "body": "**/var** is at 93%",
        "priority": "critical",
        "format": "markdown",
        "fields": [["host", "web-01"], ["used", "93%"], ["zone", "eu-1"]],
        "links": [{"label": "Dashboard", "url": "https://grafana.example.com/d/1"}],
        "labels": {"source": "prometheus", "service": "api", "severity": "page"},
        "thread_key": "disk:web-01",
        "dedup_key": "disk:web-01:93",
        "resolves": True,
    }
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize("message", [full_message(), Message("plain")], ids=["full", "minimal"])
def test_round_trips(message: Message) -> None:
    d = message.to_dict()
    through_json = json.loads(json.dumps(d))
    stored = Message.from_stored(through_json)
    parsed = Message.from_dict(through_json)
    assert stored == message and parsed == message
    assert stored.to_dict() == d and parsed.to_dict() == d
    assert isinstance(stored.priority, Priority) and isinstance(stored.format, Format)
    assert all(isinstance(f, Field) for f in stored.fields)
    assert all(isinstance(link, Link) for link in stored.links)
    assert stored.field_map() == message.field_map()


def test_from_dict_validates_and_from_stored_trusts() -> None:
    d = Message("x").to_dict()
    with pytest.raises(MessageError):
        Message.from_dict({**d, "title": ""})
    with pytest.raises(MessageError):
        Message.from_dict({**d, "extra": 1})
    # from_stored reads rows written before `resolves` existed.
    legacy = {k: v for k, v in d.items() if k not in ("resolves", "thread_key", "dedup_key")}
    m = Message.from_stored(legacy)
    assert m.resolves is False and m.thread_key is None and m.dedup_key is None


def test_a_copy_with_other_labels_has_its_own_dict() -> None:
    m = Message("t", labels={"a": "1"})
    assert m.to_dict()["labels"] == {"a": "1"}  # built and kept
    copied = m.model_copy(update={"labels": {"a": "2"}})
    assert copied.to_dict()["labels"] == {"a": "2"}
    assert m.to_dict()["labels"] == {"a": "1"}
