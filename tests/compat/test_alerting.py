"""``AlertDispatcher``: configured from SECURITY_ALERT_* variables or from arguments; sends to
Teams and email in background threads (the fake Teams webhook and a real SMTP server here, or
injected senders); never blocks and never raises; one channel failing doesn't stop the other;
failures are the structlog events ``alerting.teams_failed`` / ``alerting.email_failed``."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from fake_smtp import PASSWORD, USER, Certificate, SmtpServer
from fake_teams import FakeTeams
from peer import free_port
from sink import Reply

from tidings.compat import AlertDispatcher, AlertDispatcherError, EmailDeliveryError, TeamsWebhookError
from tidings.compat import alerting as alerting_module

EVENT = {"event_type": "rate_limit", "count": 120, "path": "/api/login", "method": "POST", "client": "203.0.113.7"}
SIG = "Zm9vYmFyYmF6cXV4c2lnbmF0dXJl"  # the fake Teams URL's signature: a credential
ENV = (
    "SECURITY_ALERT_TEAMS_WEBHOOK", "SECURITY_ALERT_EMAIL_HOST", "SECURITY_ALERT_EMAIL_RECIPIENTS",
    "SECURITY_ALERT_EMAIL_PORT", "SECURITY_ALERT_EMAIL_USERNAME", "SECURITY_ALERT_EMAIL_PASSWORD",
    "SECURITY_ALERT_EMAIL_FROM", "SECURITY_ALERT_EMAIL_USE_TLS", "SECURITY_ALERT_EMAIL_USE_SSL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


class Recorder:
    """An injected sender: records its calls; ``fail`` makes it raise, ``gate`` makes it wait."""

    def __init__(self, fail: Exception | None = None, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail
        self.gate = gate
        self.started = threading.Event()
        self.done = threading.Event()

    def __call__(self, *args: Any) -> None:
        self.started.set()
        try:
            if self.gate is not None:
                self.gate.wait(10)
            self.calls.append(args)
            if self.fail is not None:
                raise self.fail
        finally:
            self.done.set()


async def flush(dispatcher: AlertDispatcher, timeout: float = 15.0) -> None:
    """Wait for the background sends without blocking this loop (the fake servers run on it)."""
    assert await asyncio.to_thread(dispatcher.flush, timeout), "the background sends did not finish"


# -- configuration -------------------------------------------------------------------------------
def test_configured_from_the_environment_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITY_ALERT_TEAMS_WEBHOOK", "https://prod-1.westeurope.logic.azure.com/workflows/x")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_HOST", "smtp.example.com")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_RECIPIENTS", "sec@example.com, ,ops@example.com ")
    d = AlertDispatcher()
    assert d.teams_webhook_url == "https://prod-1.westeurope.logic.azure.com/workflows/x"
    assert d.email_config["host"] == "smtp.example.com"
    assert d.email_config["recipients"] == ["sec@example.com", "ops@example.com"]
    assert d.email_config["port"] == 587
    assert d.email_config["use_tls"] is True and d.email_config["use_ssl"] is False
    assert d.channels == ["teams", "email"]
    assert (d.teams_timeout, d.email_timeout) == (5.0, 10.0)


def test_environment_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_HOST", "smtp.example.com")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_RECIPIENTS", "sec@example.com")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_PORT", "465")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_USERNAME", "bot")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_FROM", "security@example.com")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_USE_TLS", "false")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_USE_SSL", "true")
    c = AlertDispatcher().email_config
    assert c == {
        "host": "smtp.example.com", "port": 465, "username": "bot", "password": "hunter2hunter2",
        "from_address": "security@example.com", "recipients": ["sec@example.com"], "use_ssl": True, "use_tls": False,
    }


def test_nothing_configured_means_no_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_HOST", "smtp.example.com")  # no recipients: no email
    d = AlertDispatcher(teams_sender=Recorder(), email_sender=Recorder())
    assert d.channels == []
    d.dispatch(EVENT)
    assert d.pending == 0


def test_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITY_ALERT_TEAMS_WEBHOOK", "https://env.example.com/hook")
    d = AlertDispatcher(teams_webhook_url="https://arg.example.com/hook", email_config={"host": "h", "recipients": ["a@b.c"]})
    assert d.teams_webhook_url == "https://arg.example.com/hook"
    assert d.email_config == {"host": "h", "recipients": ["a@b.c"]}


def test_the_exceptions_form_one_hierarchy() -> None:
    assert issubclass(TeamsWebhookError, AlertDispatcherError)
    assert issubclass(EmailDeliveryError, AlertDispatcherError)
    assert issubclass(AlertDispatcherError, Exception)
    assert (alerting_module.TEAMS_TIMEOUT, alerting_module.EMAIL_TIMEOUT) == (5.0, 10.0)


# -- injected senders ------------------------------------------------------------------------------
async def test_dispatch_calls_both_injected_senders(logs: list[dict[str, Any]]) -> None:
    teams, mail = Recorder(), Recorder()
    config = {"host": "smtp.example.com", "recipients": ["sec@example.com"]}
    d = AlertDispatcher(teams_webhook_url="https://example.com/hook", email_config=config,
                        teams_sender=teams, email_sender=mail)
    d.dispatch(EVENT)
    await flush(d)
    [(url, message)] = teams.calls
    assert url == "https://example.com/hook"
    for needle in ("rate_limit", "120", "/api/login", "POST", "203.0.113.7"):
        assert needle in message
    [(got_config, subject, body)] = mail.calls
    assert got_config == config
    assert subject == "[Security Alert] Rate Limit"
    assert "/api/login" in body and "203.0.113.7" in body
    assert d.sent == {"teams": 1, "email": 1} and d.failed == {"teams": 0, "email": 0}
    assert {e["event"] for e in logs} >= {"alerting.teams_sent", "alerting.email_sent"}


async def test_dispatch_never_blocks_on_a_slow_sender() -> None:
    gate = threading.Event()
    teams, mail = Recorder(gate=gate), Recorder(gate=gate)
    d = AlertDispatcher(teams_webhook_url="https://example.com/hook", email_config={"host": "h", "recipients": ["a@b.c"]},
                        teams_sender=teams, email_sender=mail)
    d.dispatch(EVENT)
    # dispatch returned while both senders are still waiting for the gate: they run elsewhere.
    assert not gate.is_set()
    assert d.pending == 2
    assert teams.calls == [] and mail.calls == []
    gate.set()
    await flush(d)
    assert len(teams.calls) == 1 and len(mail.calls) == 1


async def test_one_failing_channel_does_not_stop_the_other(logs: list[dict[str, Any]]) -> None:
    teams = Recorder(fail=TeamsWebhookError("Teams said 500 for https://example.com/hook?sig=abcdefghijklmnopqrst"))
    mail = Recorder()
    d = AlertDispatcher(teams_webhook_url="https://example.com/hook?sig=abcdefghijklmnopqrst",
                        email_config={"host": "h", "recipients": ["a@b.c"]}, teams_sender=teams, email_sender=mail)
    d.dispatch(EVENT)  # never raises
    await flush(d)
    assert len(mail.calls) == 1
    [failed] = [e for e in logs if e["event"] == "alerting.teams_failed"]
    assert failed["log_level"] == "error"
    assert failed["event_type"] == "rate_limit"
    assert failed["error_type"] == "TeamsWebhookError"
    assert "Teams said 500" in failed["error"]
    assert "abcdefghijklmnopqrst" not in failed["error"]  # the webhook URL is a credential
    assert d.failed == {"teams": 1, "email": 0} and d.sent == {"teams": 0, "email": 1}


async def test_email_failing_is_logged_and_teams_still_goes(logs: list[dict[str, Any]]) -> None:
    teams, mail = Recorder(), Recorder(fail=OSError("connection refused"))
    d = AlertDispatcher(teams_webhook_url="https://example.com/hook", email_config={"host": "h", "recipients": ["a@b.c"]},
                        teams_sender=teams, email_sender=mail)
    d.dispatch(EVENT)
    await flush(d)
    assert len(teams.calls) == 1
    [failed] = [e for e in logs if e["event"] == "alerting.email_failed"]
    assert "connection refused" in failed["error"]


@pytest.mark.parametrize("payload", [None, 42, "text", {}, {"event_type": None, "count": object()}])
async def test_dispatch_never_raises_whatever_it_is_given(payload: Any, logs: list[dict[str, Any]]) -> None:
    teams = Recorder()
    d = AlertDispatcher(teams_webhook_url="https://example.com/hook", teams_sender=teams)
    d.dispatch(payload)
    await flush(d)
    assert teams.calls or any(e["event"] == "alerting.dispatch_failed" for e in logs)


# -- the default senders, against real servers -----------------------------------------------------
async def test_from_the_environment_to_real_teams_and_smtp(
    monkeypatch: pytest.MonkeyPatch, teams: FakeTeams, smtp: Callable[..., SmtpServer]
) -> None:
    server = smtp("none")
    monkeypatch.setenv("SECURITY_ALERT_TEAMS_WEBHOOK", teams.workflow_url())
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_PORT", str(server.port))
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_RECIPIENTS", "sec@example.com,ops@example.com")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_FROM", "alerts@example.com")
    monkeypatch.setenv("SECURITY_ALERT_EMAIL_USE_TLS", "false")
    d = AlertDispatcher()
    d.dispatch({**EVENT, "top_clients": [{"client": "203.0.113.7", "count": 90}],
                "top_paths": [{"path": "/api/login", "count": 120}]})
    await flush(d)
    assert d.sent == {"teams": 1, "email": 1}, d.failed
    card = json.dumps(teams.card_at(0))
    assert "Security Alert" in card and "/api/login" in card and "203.0.113.7 (90)" in card
    [mail] = server.mails
    m = mail.message
    assert m["Subject"] == "[Security Alert] Rate Limit"
    assert sorted(mail.rcpt_tos) == ["ops@example.com", "sec@example.com"]
    text = m.get_body(("plain",)).get_content()
    assert "/api/login" in text and "203.0.113.7" in text and "Please investigate" in text


async def test_email_over_starttls_with_login(smtp: Callable[..., SmtpServer], certs: Certificate) -> None:
    server = smtp()
    config = {"host": "127.0.0.1", "port": server.port, "username": USER, "password": PASSWORD,
              "from_address": "alerts@example.com", "recipients": ["sec@example.com"], "use_tls": True,
              "ca_file": str(certs.cert)}
    d = AlertDispatcher(email_config=config)
    d.dispatch(EVENT)
    await flush(d)
    assert d.sent["email"] == 1, d.failed
    [mail] = server.mails
    assert mail.tls and mail.authenticated


@pytest.mark.parametrize("status", [500, 429])
async def test_teams_errors_are_logged_without_the_url(teams: FakeTeams, status: int, logs: list[dict[str, Any]]) -> None:
    teams.script(*[Reply(status, body=f"no thanks {teams.workflow_url()}", headers={"Retry-After": "0"})] * 5)
    d = AlertDispatcher(teams_webhook_url=teams.workflow_url())
    d.dispatch(EVENT)
    await flush(d)
    [failed] = [e for e in logs if e["event"] == "alerting.teams_failed"]
    assert str(status) in failed["error"] and failed["error_type"] == "TeamsWebhookError"
    assert SIG not in json.dumps(logs, default=str)
    assert len(teams.received) >= 1


async def test_teams_timeout_is_bounded(teams: FakeTeams, logs: list[dict[str, Any]]) -> None:
    teams.script(*[Reply(delay=30)] * 5)
    d = AlertDispatcher(teams_webhook_url=teams.workflow_url(), teams_timeout=0.5)
    d.dispatch(EVENT)
    await flush(d, timeout=10)  # far less than the 30 s the server takes to answer
    [failed] = [e for e in logs if e["event"] == "alerting.teams_failed"]
    assert failed["error_type"] == "TeamsWebhookError"


async def test_smtp_down_is_logged_as_email_failed(logs: list[dict[str, Any]]) -> None:
    config = {"host": "127.0.0.1", "port": free_port(), "username": USER, "password": PASSWORD,
              "from_address": "alerts@example.com", "recipients": ["sec@example.com"]}
    d = AlertDispatcher(email_config=config, email_timeout=2)
    d.dispatch(EVENT)
    await flush(d)
    [failed] = [e for e in logs if e["event"] == "alerting.email_failed"]
    assert failed["error_type"] == "EmailDeliveryError"
    assert PASSWORD not in json.dumps(logs, default=str)
    assert d.failed["email"] == 1


async def test_teams_failing_does_not_stop_real_email(
    teams: FakeTeams, smtp: Callable[..., SmtpServer], logs: list[dict[str, Any]]
) -> None:
    server = smtp("none")
    teams.script(*[Reply(500)] * 5)
    d = AlertDispatcher(teams_webhook_url=teams.workflow_url(),
                        email_config={"host": "127.0.0.1", "port": server.port, "use_tls": False,
                                      "from_address": "alerts@example.com", "recipients": ["sec@example.com"]})
    d.dispatch(EVENT)
    await flush(d)
    assert len(server.mails) == 1
    assert [e["event"] for e in logs if e["event"].endswith("_failed")] == ["alerting.teams_failed"]


# -- short scripts: the sends finish at interpreter exit ------------------------------------------
SCRIPT = """
import atexit, sys, time
from tidings.compat import AlertDispatcher
started = time.monotonic()
atexit.register(lambda: print(f"held the exit {time.monotonic() - started:.3f} s"))  # runs after threads are done
AlertDispatcher(**eval(sys.argv[1])).dispatch({"event_type": "rate_limit", "count": 3, "path": "/login",
                                               "method": "POST", "client": "203.0.113.7"})
"""


async def run_script(kwargs: dict[str, Any]) -> tuple[int, str, float]:
    """Run SCRIPT (which dispatches on its last line) in a fresh interpreter: exit code, output,
    and the seconds from the dispatch to the end of the wait at exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, repr(kwargs), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    text = out.decode()
    held = re.search(r"held the exit ([0-9.]+) s", text)
    assert held, text
    return proc.returncode or 0, text, float(held.group(1))


async def test_a_script_that_dispatches_and_exits_still_sends(teams: FakeTeams, smtp: Callable[..., SmtpServer]) -> None:
    server = smtp("none")
    server.delay = 0.5  # the mail server takes its time: the script has long reached its end
    teams.script(Reply(delay=0.5, status=202))
    config = {"host": "127.0.0.1", "port": server.port, "use_tls": False, "from_address": "alerts@example.com",
              "recipients": ["sec@example.com"]}
    code, out, _ = await run_script({"teams_webhook_url": teams.workflow_url(), "email_config": config})
    assert code == 0, out
    assert len(server.mails) == 1, out
    assert "rate_limit" in server.mails[0].message.get_body(("plain",)).get_content()
    assert "alerting.teams_sent" in out and "alerting.email_sent" in out, out
    assert len(teams.received) == 1


async def test_a_hanging_peer_holds_the_exit_no_longer_than_the_bound() -> None:
    hung: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never says a word
    port = listener.getsockname()[1]
    accept = threading.Thread(target=lambda: hung.append(listener.accept()[0]), daemon=True)
    accept.start()
    try:
        config = {"host": "127.0.0.1", "port": port, "use_tls": False, "from_address": "alerts@example.com",
                  "recipients": ["sec@example.com"]}
        code, out, seconds = await run_script({"email_config": config, "email_timeout": 120, "exit_timeout": 1.0})
        assert code == 0, out
        assert "alerting.exit_timeout" in out, out
        assert 0.9 < seconds < 10, seconds  # the bound is 1 s; the send alone would take 120 s
        assert hung, "the script never connected"
    finally:
        listener.close()
        for conn in hung:
            conn.close()


def test_the_default_email_sender_uses_smtplib() -> None:
    config = {"host": "smtp.example.com", "port": 2525, "username": "bot", "password": "hunter2hunter2",
              "from_address": "alerts@example.com", "recipients": ["sec@example.com"], "use_tls": True}
    with mock.patch("smtplib.SMTP") as smtp_class:
        smtp_class.return_value.send_message.return_value = {}
        d = AlertDispatcher(email_config=config)
        d.dispatch(EVENT)
        assert d.flush(15)
    assert d.sent["email"] == 1, d.failed
    assert smtp_class.call_args.args[:2] == ("smtp.example.com", 2525)
    conn = smtp_class.return_value
    conn.starttls.assert_called_once()
    conn.login.assert_called_once_with("bot", "hunter2hunter2")
    [call] = conn.send_message.call_args_list
    msg = call.args[0]
    assert msg["Subject"] == "[Security Alert] Rate Limit"
    assert call.kwargs["to_addrs"] == ["sec@example.com"]
    conn.quit.assert_called_once()


@pytest.mark.parametrize("host", ["169.254.169.254", "metadata.google.internal", "[fd00:ec2::254]"])
def test_the_default_email_sender_never_reaches_a_metadata_service(host: str) -> None:
    config = {"host": host, "port": 25, "from_address": "alerts@example.com", "recipients": ["sec@example.com"]}
    with mock.patch("smtplib.SMTP") as smtp_class:
        d = AlertDispatcher(email_config=config)
        d.dispatch(EVENT)
        assert d.flush(15)
    smtp_class.assert_not_called()
    assert d.sent["email"] == 0 and d.failed["email"] == 1, (d.sent, d.failed)


async def test_smtps_with_a_refused_recipient_is_sent_to_the_others(
    smtp: Callable[..., SmtpServer], certs: Certificate, logs: list[dict[str, Any]]
) -> None:
    server = smtp("tls")
    server.refuse["gone@example.com"] = "550 5.1.1 no such user"
    config = {"host": "127.0.0.1", "port": server.port, "username": USER, "password": PASSWORD, "use_ssl": True,
              "from_address": "alerts@example.com", "recipients": ["sec@example.com", "gone@example.com"],
              "ca_file": str(certs.cert)}
    d = AlertDispatcher(email_config=config)
    d.dispatch(EVENT)
    await flush(d)
    assert d.sent["email"] == 1, d.failed
    [mail] = server.mails
    assert mail.tls and mail.rcpt_tos == ["sec@example.com"]
    [partial] = [e for e in logs if e["event"] == "alerting.email_partial"]
    assert "gone@example.com" in partial["warning"]


async def test_a_4xx_answer_to_data_is_retried(smtp: Callable[..., SmtpServer]) -> None:
    server = smtp("none")
    server.data_replies.append("451 4.3.0 try later")
    d = AlertDispatcher(email_config={"host": "127.0.0.1", "port": server.port, "use_tls": False,
                                      "from_address": "alerts@example.com", "recipients": ["sec@example.com"]})
    d.dispatch(EVENT)
    await flush(d)
    assert d.sent["email"] == 1, d.failed
    assert len(server.seen) == 2 and len(server.mails) == 1
