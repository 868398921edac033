"""``create_communication_integration``: Slack, Teams and email through the old messaging API,
against the fake Slack Web API, the fake Teams webhook and a real SMTP server (STARTTLS with a
self-signed certificate and AUTH). A peer's failure is a ``MessageResponse(success=False)`` with
the reason, never an exception, and the statistics count it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fake_slack import FakeSlack, Scripted, blocks_of
from fake_smtp import PASSWORD, USER, Certificate, SmtpServer
from fake_teams import FakeTeams
from peer import free_port
from sink import Reply

from tidings.compat import (
    COMMUNICATION_AVAILABLE,
    CommunicationPlatform,
    EmailIntegration,
    Message,
    MessageFormat,
    MessagePriority,
    MessageResponse,
    SlackIntegration,
    TeamsIntegration,
    create_communication_integration,
)

FAST = {"retry_backoff": 0.01, "max_retry_delay": 0.05}


def slack_config(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {"token": slack.token, "default_channel": "#alerts", "api_url": slack.api_url, **FAST, **extra}


def email_config(server: SmtpServer | None, certs: Certificate, **extra: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port if server else free_port(),
        "username": USER,
        "password": PASSWORD,
        "from_address": "alerts@example.com",
        "from_name": "Tidings Alerts",
        "use_tls": True,
        "to_addresses": ["ops@example.com"],
        "ca_file": str(certs.cert),
        "timeout": 5,
        **FAST,
        **extra,
    }


def slack_text(post: dict[str, Any]) -> str:
    return json.dumps(post)


# -- the factory -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("platform", "cls"),
    [("slack", SlackIntegration), ("SLACK", SlackIntegration), (" Slack ", SlackIntegration),
     ("Teams", TeamsIntegration), ("EMAIL", EmailIntegration), (CommunicationPlatform.TEAMS, TeamsIntegration)],
)
def test_platform_names_are_case_insensitive(platform: Any, cls: type) -> None:
    configs = {
        SlackIntegration: {"token": "xoxb-1-2-abc", "default_channel": "#alerts"},
        TeamsIntegration: {"webhook_url": "https://prod-1.westeurope.logic.azure.com/workflows/abc/triggers/manual"
                                          "/paths/invoke?sig=abcdefghijklmnop"},
        EmailIntegration: {"smtp_host": "mail.example.com", "from_address": "a@example.com"},
    }
    integration = create_communication_integration(platform, configs[cls])
    assert type(integration) is cls
    assert COMMUNICATION_AVAILABLE is True


@pytest.mark.parametrize("platform", ["discord", "", "smtp", "slack2"])
def test_an_unknown_platform_is_a_value_error(platform: str) -> None:
    with pytest.raises(ValueError, match="Unsupported communication platform"):
        create_communication_integration(platform, {"token": "xoxb-1"})


def test_a_config_the_channel_refuses_is_a_value_error_without_the_secret() -> None:
    with pytest.raises(ValueError, match="teams"):
        create_communication_integration("teams", {})
    with pytest.raises(ValueError) as info:
        create_communication_integration("teams", {"webhook_url": "ftp://example.com/hook?sig=supersecretsig123"})
    assert "supersecretsig123" not in str(info.value)
    with pytest.raises(ValueError, match="smtp_host"):
        create_communication_integration("email", {"from_address": "a@example.com"})


def test_message_and_response_shapes() -> None:
    m = Message("Title", "Body", priority=MessagePriority.CRITICAL, format=MessageFormat.HTML, channel="#ops",
                thread_id="C1:1.2", metadata={"k": 1})
    assert (m.title, m.body, m.priority, m.format, m.channel, m.thread_id, m.metadata) == (
        "Title", "Body", MessagePriority.CRITICAL, MessageFormat.HTML, "#ops", "C1:1.2", {"k": 1})
    assert [p.name for p in MessagePriority] == ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]
    assert [f.name for f in MessageFormat] == ["PLAIN", "MARKDOWN", "HTML", "ADAPTIVE_CARD"]
    r = MessageResponse(False, "id-1", "#ops", "boom")  # the old positional order
    assert (r.success, r.message_id, r.channel, r.error_message) == (False, "id-1", "#ops", "boom")


# -- Slack -----------------------------------------------------------------------------------------
async def test_slack_sends_with_the_configured_identity_and_threads_replies(slack: FakeSlack) -> None:
    config = slack_config(slack, username="Deploy Bot", icon_emoji=":rocket:")
    async with create_communication_integration("slack", config) as chat:
        first = await chat.send_message(Message(
            "Deploy started", "Version *1.4.2* to production", priority=MessagePriority.HIGH,
            metadata={"service": "api", "replicas": 3},
        ))
        assert first.success, first.error_message
        assert first.message_id and first.message_id.startswith("C0ALERTS:")
        assert first.channel == "#alerts"
        reply = await chat.send_message(Message("Deploy finished", "all green", thread_id=first.message_id))
        assert reply.success, reply.error_message
        stats = chat.get_statistics()
    posts = slack.posts()
    assert len(posts) == 2
    assert posts[0]["channel"] == "#alerts"
    assert posts[0]["username"] == "Deploy Bot" and posts[0]["icon_emoji"] == ":rocket:"
    assert "thread_ts" not in posts[0]
    text = slack_text(posts[0])
    assert "Deploy started" in text and "service" in text and "replicas" in text and "api" in text
    # The reply went into the first message's thread, in its channel.
    parent_ts = first.message_id.split(":", 1)[1]
    assert posts[1]["thread_ts"] == parent_ts
    assert posts[1]["channel"] == "C0ALERTS"
    assert slack.messages[("C0ALERTS", parent_ts)]["replies"] == [reply.message_id.split(":", 1)[1]]
    assert stats["messages_sent"] == 2 and stats["messages_failed"] == 0 and stats["success_rate"] == 100.0


async def test_slack_channel_of_a_message_overrides_the_default(slack: FakeSlack) -> None:
    async with create_communication_integration("slack", slack_config(slack)) as chat:
        response = await chat.send_message(Message("To ops", "hello", channel="#ops"))
    assert response.success and response.message_id.startswith("C0OPS:") and response.channel == "#ops"
    assert slack.posts()[0]["channel"] == "#ops"


async def test_slack_escapes_user_text(slack: FakeSlack) -> None:
    async with create_communication_integration("slack", slack_config(slack)) as chat:
        response = await chat.send_message(Message("<!channel> & <b>", "ping <!here> & <@U123>",
                                                   format=MessageFormat.PLAIN))
    assert response.success
    # the fixture's teardown asserts that no unescaped text reached Slack (slack.violations)
    assert "<!channel>" not in json.dumps(blocks_of(slack.posts()[0]))


async def test_slack_invalid_auth_is_a_failed_response_counted_in_the_statistics(slack: FakeSlack) -> None:
    config = slack_config(slack, token="xoxb-9999-wrong-token")
    async with create_communication_integration("slack", config) as chat:
        response = await chat.send_message(Message("Hello", "world"))
        stats = chat.get_statistics()
        health = chat.health_check()
    assert response.success is False
    assert response.message_id is None
    assert "invalid_auth" in response.error_message
    assert "xoxb-9999-wrong-token" not in response.error_message
    assert len(slack.calls_of("chat.postMessage")) == 1  # permanent: not retried
    assert stats["messages_sent"] == 0 and stats["messages_failed"] == 1 and stats["success_rate"] == 0.0
    assert "invalid_auth" in stats["last_error"]
    assert health["status"] == "degraded"


async def test_slack_retries_a_rate_limit_then_delivers(slack: FakeSlack) -> None:
    slack.script("chat.postMessage", Scripted(status=429, headers={"Retry-After": "0"}),
                 Scripted(error="ratelimited"))
    async with create_communication_integration("slack", slack_config(slack)) as chat:
        response = await chat.send_message(Message("Eventually", "through"))
        stats = chat.get_statistics()
    assert response.success, response.error_message
    assert len(slack.calls_of("chat.postMessage")) == 3
    assert stats["retries"] == 2 and stats["messages_sent"] == 1 and stats["messages_failed"] == 0


async def test_slack_gives_up_after_max_retries(slack: FakeSlack) -> None:
    slack.script("chat.postMessage", *[Scripted(status=503, body="down")] * 3)
    async with create_communication_integration("slack", slack_config(slack, max_retries=2)) as chat:
        response = await chat.send_message(Message("Never", "arrives"))
    assert not response.success and "503" in response.error_message
    assert len(slack.calls_of("chat.postMessage")) == 3


async def test_slack_refuses_a_thread_id_that_is_not_a_message_id(slack: FakeSlack) -> None:
    async with create_communication_integration("slack", slack_config(slack)) as chat:
        response = await chat.send_message(Message("Reply", "to what?", thread_id="not-a-ts"))
        card = await chat.send_message(Message("Card", "{}", format=MessageFormat.ADAPTIVE_CARD))
    assert not response.success and "thread_id" in response.error_message
    assert not card.success and "ADAPTIVE_CARD" in card.error_message
    assert slack.posts() == []


async def test_send_batch_answers_in_order_and_counts_each(slack: FakeSlack) -> None:
    messages = [Message("one", "1"), Message("two", "2", channel="#nowhere"), Message("three", "3", channel="#ops")]
    async with create_communication_integration("slack", slack_config(slack)) as chat:
        responses = await chat.send_batch(messages)
        stats = chat.get_statistics()
    assert [r.success for r in responses] == [True, False, True]
    assert "channel_not_found" in responses[1].error_message
    assert [p["text"] for p in slack.posts()][0].count("one") == 1
    assert [p["channel"] for p in slack.posts()] == ["#alerts", "#nowhere", "#ops"]
    assert stats["messages_sent"] == 2 and stats["messages_failed"] == 1
    assert stats["success_rate"] == pytest.approx(66.67)


async def test_send_batch_concurrently_keeps_the_order_of_the_answers(slack: FakeSlack) -> None:
    messages = [Message(f"m{i}", str(i), channel="#ops" if i % 2 else "#alerts") for i in range(6)]
    async with create_communication_integration("slack", slack_config(slack)) as chat:
        responses = await chat.send_batch(messages, concurrency=3)
    assert all(r.success for r in responses)
    assert [r.channel for r in responses] == [m.channel for m in messages]
    assert len(slack.posts()) == 6


async def test_slack_health_check_is_a_dict_and_can_probe(slack: FakeSlack) -> None:
    async with create_communication_integration("slack", slack_config(slack)) as chat:
        health = chat.health_check()
        assert isinstance(health, dict) and health["status"] == "healthy"
        live = await chat.health_check()
        assert live["status"] == "healthy" and live["checked"] == "live"
    assert len(slack.calls_of("auth.test")) == 1
    async with create_communication_integration("slack", slack_config(slack, token="xoxb-1-bad")) as bad:
        for _ in range(3):
            assert not (await bad.send_message(Message("x", "y"))).success
        assert bad.health_check()["status"] == "unhealthy"
        live = await bad.health_check()
        assert live["status"] == "unhealthy" and "invalid_auth" in live["probe"]


# -- Teams -----------------------------------------------------------------------------------------
async def test_teams_posts_an_adaptive_card(teams: FakeTeams) -> None:
    url = teams.workflow_url()
    async with create_communication_integration("teams", {"webhook_url": url, **FAST}) as chat:
        response = await chat.send_message(Message(
            "Disk almost full", "web-01 is at **91%**", priority=MessagePriority.CRITICAL,
            metadata={"host": "web-01"},
        ))
        stats = chat.get_statistics()
        health = chat.health_check()
    assert response.success, response.error_message
    assert response.message_id and response.message_id.startswith("08584")  # the workflow run id
    assert len(teams.received) == 1
    body = teams.received[0].json()
    assert body["type"] == "message"
    card = teams.card_at(0)
    assert card["type"] == "AdaptiveCard"
    assert "Disk almost full" in json.dumps(card) and "web-01" in json.dumps(card)
    assert stats["messages_sent"] == 1 and stats["success_rate"] == 100.0
    assert health["status"] == "healthy"


async def test_teams_adaptive_card_format_is_sent_as_given(teams: FakeTeams) -> None:
    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "hand-made"}]}
    async with create_communication_integration("teams", {"webhook_url": teams.workflow_url()}) as chat:
        response = await chat.send_message(Message("ignored", json.dumps(card), format=MessageFormat.ADAPTIVE_CARD))
        bad = await chat.send_message(Message("bad", "not json", format=MessageFormat.ADAPTIVE_CARD))
    assert response.success
    assert teams.card_at(0) == card
    assert not bad.success and "not JSON" in bad.error_message
    assert len(teams.received) == 1


@pytest.mark.parametrize("status", [500, 429])
async def test_teams_failures_are_failed_responses(teams: FakeTeams, status: int) -> None:
    teams.script(*[Reply(status, body="server says no", headers={"Retry-After": "0"})] * 2)
    config = {"webhook_url": teams.workflow_url(), "max_retries": 1, **FAST}
    async with create_communication_integration("teams", config) as chat:
        response = await chat.send_message(Message("Hello", "Teams"))
        stats = chat.get_statistics()
    assert response.success is False
    assert str(status) in response.error_message
    assert "Zm9vYmFyYmF6cXV4c2lnbmF0dXJl" not in response.error_message  # the URL's signature
    assert len(teams.received) == 2  # retried once, then given up
    assert stats["messages_failed"] == 1 and stats["messages_sent"] == 0 and stats["retries"] == 1


async def test_teams_bad_request_is_not_retried(teams: FakeTeams) -> None:
    teams.script(Reply(400, body='{"error": {"code": "InvalidRequestContent"}}'))
    async with create_communication_integration("teams", {"webhook_url": teams.workflow_url(), **FAST}) as chat:
        response = await chat.send_message(Message("Hello", "Teams"))
    assert not response.success and "400" in response.error_message
    assert len(teams.received) == 1


async def test_teams_connector_throttling_in_a_200_is_a_failure(teams: FakeTeams) -> None:
    teams.throttle(5)
    config = {"webhook_url": teams.connector_url(), "max_retries": 1, **FAST}
    async with create_communication_integration("teams", config) as chat:
        response = await chat.send_message(Message("Hello", "connector"))
    assert not response.success and "429" in response.error_message


async def test_teams_down_is_a_failed_response(teams: FakeTeams) -> None:
    url = teams.workflow_url().replace(f":{teams.port}/", f":{free_port()}/")
    async with create_communication_integration("teams", {"webhook_url": url, "max_retries": 0}) as chat:
        response = await chat.send_message(Message("Hello", "nobody"))
        assert not response.success and response.error_message
        assert chat.get_statistics()["messages_failed"] == 1


# -- email -----------------------------------------------------------------------------------------
async def test_email_over_starttls_with_login_and_threading(smtp: Callable[..., SmtpServer], certs: Certificate) -> None:
    server = smtp()
    async with create_communication_integration("email", email_config(server, certs)) as mail:
        first = await mail.send_message(Message(
            "Nightly backup failed", "The **backup** of db-01 failed.", priority=MessagePriority.HIGH,
            metadata={"host": "db-01"},
        ))
        assert first.success, first.error_message
        reply = await mail.send_message(Message("Nightly backup retried", "ok now", thread_id=first.message_id,
                                                 channel="dba@example.com, oncall@example.com"))
        assert reply.success, reply.error_message
        stats = mail.get_statistics()
    assert len(server.mails) == 2
    one, two = server.mails
    assert one.tls and one.authenticated and two.tls and two.authenticated
    m = one.message
    assert "Nightly backup failed" in m["Subject"]
    assert m["From"].addresses[0].display_name == "Tidings Alerts"
    assert m["From"].addresses[0].addr_spec == "alerts@example.com"
    assert [a.addr_spec for a in m["To"].addresses] == ["ops@example.com"]
    assert m["Message-ID"] == first.message_id
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert "db-01" in text and "db-01" in html
    assert first.channel == "ops@example.com"
    # the reply: threaded on the first, to the message's own recipients
    r = two.message
    assert r["In-Reply-To"] == first.message_id
    assert first.message_id in r["References"]
    assert sorted(two.rcpt_tos) == ["dba@example.com", "oncall@example.com"]
    assert stats["messages_sent"] == 2 and stats["success_rate"] == 100.0


async def test_email_health_check_probes_without_sending(smtp: Callable[..., SmtpServer], certs: Certificate) -> None:
    server = smtp()
    async with create_communication_integration("email", email_config(server, certs)) as mail:
        assert mail.health_check()["status"] == "healthy"
        live = await mail.health_check()
    assert live["status"] == "healthy" and live["checked"] == "live"
    assert server.mails == [] and server.logins == [(USER, True)]


async def test_email_server_down_is_a_failed_response(certs: Certificate) -> None:
    config = email_config(None, certs, max_retries=1)
    async with create_communication_integration("email", config) as mail:
        response = await mail.send_message(Message("Hello", "nobody listens"))
        stats = mail.get_statistics()
        live = await mail.health_check()
    assert response.success is False and response.error_message
    assert PASSWORD not in response.error_message
    assert stats["messages_failed"] == 1 and stats["messages_sent"] == 0 and stats["success_rate"] == 0.0
    assert live["status"] == "unhealthy"


async def test_email_wrong_password_is_a_failed_response(smtp: Callable[..., SmtpServer], certs: Certificate) -> None:
    server = smtp()
    config = email_config(server, certs, password="wrong horse battery staple")
    async with create_communication_integration("email", config) as mail:
        response = await mail.send_message(Message("Hello", "locked out"))
    assert not response.success and "wrong horse" not in response.error_message
    assert "535" in response.error_message
    assert server.mails == [] and server.logins and not any(ok for _, ok in server.logins)
    assert mail.get_statistics()["retries"] == 0  # permanent: not retried


async def test_email_temporary_refusal_is_retried(smtp: Callable[..., SmtpServer], certs: Certificate) -> None:
    server = smtp()
    server.data_replies.append("451 4.3.0 try again later")
    async with create_communication_integration("email", email_config(server, certs)) as mail:
        response = await mail.send_message(Message("Hello", "second time lucky"))
        stats = mail.get_statistics()
    assert response.success, response.error_message
    assert len(server.seen) == 2 and len(server.mails) == 1 and stats["retries"] == 1


async def test_email_without_any_recipient_fails_the_message(smtp: Callable[..., SmtpServer], certs: Certificate) -> None:
    server = smtp()
    config = email_config(server, certs)
    del config["to_addresses"]
    async with create_communication_integration("email", config) as mail:
        response = await mail.send_message(Message("Hello", "to whom?"))
        addressed = await mail.send_message(Message("Hello", "to you", channel="you@example.com"))
    assert not response.success and "recipient" in response.error_message
    assert addressed.success and server.mails[0].rcpt_tos == ["you@example.com"]
