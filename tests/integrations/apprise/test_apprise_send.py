"""The apprise kind on its own: settings checked at config load (never echoing a URL), what is
rendered, Apprise's True/False read as delivered/retryable over several URL forms against local
stand-ins, failures masked, the guard on self-hosted hosts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from helpers import local_context
from sink import Reply, Sink

from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.apprise import AppriseNotifier, AppriseSettings, fingerprint, network_host, progress_of
from tidings.integrations.base import Attempt, Context, OutcomeStatus
from tidings.message import Format, Link, Priority
from tidings.security.outbound import Destinations

TOKEN = "s3cr3tT0kenValue42"


@pytest.fixture
async def peer() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


def notifier(*urls: str, context: Context | None = None, **extra: Any) -> AppriseNotifier:
    settings = AppriseSettings.model_validate({"kind": "apprise", "urls": list(urls), **extra})
    return AppriseNotifier("push", settings, context or local_context())


def attempt(message: Message) -> Attempt:
    return Attempt("d-1", "m-1", 1, 0.0, message)


async def send(n: AppriseNotifier, message: Message) -> Any:
    return await n.send(n.render(message), attempt(message))


# -- URL forms Apprise can point at a local server -------------------------------------------
def _json(body: bytes) -> tuple[str, str]:
    data = json.loads(body)
    return data["title"], data["message"]


def _form(body: bytes) -> tuple[str, str]:
    data = parse_qs(body.decode())
    return data["title"][0], data["message"][0]


def _xml(body: bytes) -> tuple[str, str]:
    text = body.decode()
    return ("alert" if "<Subject>disk full</Subject>" in text else "?"), ("ok" if "sda1" in text else text)


def _ntfy(body: bytes) -> tuple[str, str]:
    data = json.loads(body)
    assert data["topic"] == "alerts"
    return data["title"], data["message"]


def _mattermost(body: bytes) -> tuple[str, str]:
    return "", json.loads(body)["text"]


FORMS = [
    ("json", "json://user:{token}@127.0.0.1:{port}/hook", "/hook", _json),
    ("form", "form://127.0.0.1:{port}/in?token={token}", "/in", _form),
    ("xml", "xml://127.0.0.1:{port}/soap/{token}", "/soap/", _xml),
    ("ntfy", "ntfy://{token}@127.0.0.1:{port}/alerts", "/", _ntfy),
    ("mattermost", "mmost://127.0.0.1:{port}/{token}", "/hooks/", _mattermost),
]


@pytest.mark.parametrize(("name", "template", "path", "read"), FORMS, ids=[f[0] for f in FORMS])
async def test_url_forms_delivered(peer: Sink, name: str, template: str, path: str, read: Any) -> None:
    n = notifier(template.format(port=peer.port, token=TOKEN))
    outcome = await send(n, Message("disk full", body="sda1 at 99%", priority=Priority.HIGH))
    assert outcome.status is OutcomeStatus.DELIVERED, outcome
    assert outcome.remote_id is None  # Apprise gives no id
    assert len(peer.received) == 1
    got = peer.received[0]
    assert got.method == "POST" and got.path.startswith(path), got.path
    title, body = read(got.body)
    assert "sda1" in body or body == "ok"
    if name in ("json", "form", "ntfy"):
        assert title == "disk full"


@pytest.mark.parametrize(("name", "template", "path", "read"), FORMS, ids=[f[0] for f in FORMS])
async def test_url_forms_500_is_retryable_and_masked(peer: Sink, name: str, template: str, path: str, read: Any) -> None:
    peer.script(Reply(500, body=f"boom, your token {TOKEN} is fine"))
    n = notifier(template.format(port=peer.port, token=TOKEN))
    outcome = await send(n, Message("disk full", body="sda1"))
    assert outcome.status is OutcomeStatus.RETRY, outcome
    assert outcome.error is not None
    assert "only answers True/False" in outcome.error and "urls[0]" in outcome.error
    assert TOKEN not in outcome.error, outcome.error


async def test_failure_carries_what_apprise_logged(peer: Sink) -> None:
    peer.script(Reply(503))
    outcome = await send(notifier(f"json://user:{TOKEN}@127.0.0.1:{peer.port}/hook"), Message("x"))
    assert outcome.status is OutcomeStatus.RETRY
    assert "it logged:" in (outcome.error or "") and "503" in (outcome.error or ""), outcome.error
    assert TOKEN not in (outcome.error or "")


async def test_timeout_is_retryable(peer: Sink) -> None:
    peer.script(Reply(delay=5))
    n = notifier(f"json://127.0.0.1:{peer.port}/hook", timeout=0.5)
    outcome = await send(n, Message("slow"))
    assert outcome.status is OutcomeStatus.RETRY, outcome
    # requests' read timeout (the integration's timeout, handed to the plugin) or Apprise's call timeout
    assert any(w in (outcome.error or "") for w in ("timed out", "Connection error")), outcome.error
    assert len(peer.received) == 1, "Apprise's own retries are off: tidings retries"


async def test_refused_connection_is_retryable() -> None:
    from peer import free_port

    outcome = await send(notifier(f"json://127.0.0.1:{free_port()}/hook"), Message("down"))
    assert outcome.status is OutcomeStatus.RETRY


async def test_two_urls_one_fails_progress_kept(peer: Sink) -> None:
    other = Sink()
    await other.start()
    try:
        other.script(500)
        good, bad = f"json://127.0.0.1:{peer.port}/a", f"json://127.0.0.1:{other.port}/b"
        n = notifier(good, bad)
        outcome = await send(n, Message("x"))
        assert outcome.status is OutcomeStatus.RETRY
        assert (outcome.error or "").startswith("1 of 2 URLs got it; urls[1]: ")
        assert len(peer.received) == 1 and len(other.received) == 1
    finally:
        await other.stop()


def test_progress_of() -> None:
    assert progress_of(None) == set() and progress_of("not json") == set() and progress_of("[1]") == set()
    assert progress_of('{"apprise_done": ["ab", "cd"]}') == {"ab", "cd"}
    assert len(fingerprint("json://x")) == 12 and "json" not in fingerprint("json://x")


# -- rendering ---------------------------------------------------------------------------------
def test_render_formats_priorities_and_limits() -> None:
    n = notifier("json://127.0.0.1/x", title_max=20, body_max=60)
    m = Message("a very long title that goes on and on", body="**bold** text" * 10, format=Format.MARKDOWN,
                priority=Priority.CRITICAL, fields={"host": "db1"}, links=[Link("runbook", "https://r.example/x")])
    p = n.render(m)
    assert len(p["title"]) == 20 and p["title"].endswith("…(truncated)")
    assert len(p["body"]) <= 60
    assert p["body_format"] == "markdown" and p["notify_type"] == "failure" and p["urgency"] == 2
    full = notifier("json://127.0.0.1/x").render(m)
    assert "**host**: db1" in full["body"] and "[runbook](https://r.example/x)" in full["body"]
    html = notifier("json://127.0.0.1/x", format={"plain": "html"}).render(Message("t", body="a < b", fields={"k": "<v>"}))
    assert html["body_format"] == "html" and "a &lt; b" in html["body"] and "&lt;v&gt;" in html["body"]
    text = notifier("json://127.0.0.1/x").render(Message("t", body="plain", links=[Link("see", "https://e.example")]))
    assert text["body_format"] == "text" and "see: https://e.example" in text["body"]
    assert notifier("json://127.0.0.1/x").render(Message("ok", resolves=True))["notify_type"] == "success"


# -- settings ------------------------------------------------------------------------------------
def _load(urls: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config({"server": {"database": "sqlite://"}, "integrations": {"push": {"kind": "apprise", "urls": urls}},
                      "default": {"to": ["push"]}})
    return info.value


@pytest.mark.parametrize("url", [f"bogus://{TOKEN}", f"json://{TOKEN}:{TOKEN}@", f"discord://{TOKEN}", TOKEN])
def test_malformed_url_is_a_config_error_without_the_secret(url: str) -> None:
    text = str(_load(["json://127.0.0.1/ok", url]))
    assert "urls" in text and "[1]" in text, text
    assert TOKEN not in text, text


def test_missing_apprise_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise raises ImportError
    text = str(_load([f"json://u:{TOKEN}@127.0.0.1/x"]))
    assert "tidings[apprise]" in text and TOKEN not in text


def test_secrets_and_vault_refs() -> None:
    s = AppriseSettings.model_validate(
        {"kind": "apprise", "urls": [f"json://user:{TOKEN}@127.0.0.1/x", "${vault:pushover}"]})
    assert TOKEN in s.secret_values()
    assert s.vault_refs() == {"urls.1": "pushover"}
    # what the vault watch does with a resolved (or rotated) value
    resolved = AppriseSettings.model_validate({**s.model_dump(), "urls.1": "ntfy://127.0.0.1/topic"})
    assert resolved.urls[1].get_secret_value() == "ntfy://127.0.0.1/topic"
    assert "**" in repr(resolved.urls[0])


def test_url_secrets_mask_credentials_not_words() -> None:
    from tidings.integrations.apprise import url_secrets

    discord = "discord://123456789012345678/" + TOKEN * 3
    assert {"123456789012345678", TOKEN * 3} <= set(url_secrets(discord))
    plain = url_secrets("ntfys://bob:pw1234@ntfy.example.com/alerts?priority=high")
    assert "pw1234" in plain and not {"ntfy.example.com", "alerts", "high", "bob"} & set(plain)


# -- the guard -------------------------------------------------------------------------------
def test_network_host() -> None:
    from tidings.integrations.apprise import instantiate

    assert network_host(instantiate("json://10.1.2.3/x")) == "10.1.2.3"
    assert network_host(instantiate("ntfy://127.0.0.1:9/topic")) == "127.0.0.1"
    assert network_host(instantiate("ntfy://topic")) is None  # ntfy.sh
    assert network_host(instantiate("discord://1234/abcd")) is None  # the host is a webhook id
    assert network_host(instantiate("tgram://123456:abcdef/987")) is None


async def test_loopback_refused_unless_allowed(peer: Sink) -> None:
    guarded = Context(store=None, threads=None, destinations=Destinations())  # type: ignore[arg-type]
    n = notifier(f"json://user:{TOKEN}@127.0.0.1:{peer.port}/x", context=guarded)
    outcome = await send(n, Message("x"))
    assert outcome.status is OutcomeStatus.PERMANENT, outcome
    assert "loopback" in (outcome.error or "") and TOKEN not in (outcome.error or "")
    assert peer.received == []
    allowed = notifier(f"json://127.0.0.1:{peer.port}/x", context=guarded, allow_destinations=["127.0.0.1/32"])
    assert (await send(allowed, Message("x"))).ok
    named = notifier(f"json://localhost:{peer.port}/x", context=guarded)
    assert (await send(named, Message("x"))).status is OutcomeStatus.PERMANENT


async def test_private_address_refused() -> None:
    guarded = Context(store=None, threads=None, destinations=Destinations())  # type: ignore[arg-type]
    outcome = await send(notifier("json://10.20.30.40:8080/x", context=guarded), Message("x"))
    assert outcome.status is OutcomeStatus.PERMANENT and "10.20.30.40" in (outcome.error or "")


async def test_a_plugin_raising_fails_its_url_alone(peer: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    import tidings.integrations.apprise as module

    real = module._notify

    async def flaky(apprise: Any, obj: Any, kwargs: dict[str, Any], timeout: float) -> tuple[bool, str]:
        if "/boom" in str(obj[0].url(privacy=False)):
            raise RuntimeError(f"plugin exploded near {TOKEN}")
        return await real(apprise, obj, kwargs, timeout)

    monkeypatch.setattr(module, "_notify", flaky)
    n = notifier(f"json://127.0.0.1:{peer.port}/ok", f"json://127.0.0.1:{peer.port}/boom/{TOKEN}")
    outcome = await send(n, Message("x"))
    assert outcome.status is OutcomeStatus.RETRY
    assert "1 of 2 URLs got it; urls[1]: Apprise raised RuntimeError" in (outcome.error or "")
    assert TOKEN not in (outcome.error or "") and len(peer.received) == 1
