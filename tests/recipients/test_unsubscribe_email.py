"""The email side of unsubscribing: a message carrying the ``unsubscribe_url`` label arrives with
RFC 8058 headers (``List-Unsubscribe`` + ``List-Unsubscribe-Post``) and a footer line, read back
from a real SMTP server; a mail client's one-click POST to that header's URL turns the
preference off. A malformed label adds no header (no header injection)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from fake_smtp import PASSWORD, USER, Certificate, SmtpServer
from helpers import eventually

from tidings import Message
from tidings.audit import SYSTEM
from tidings.recipients.links import Unsubscribe, unsubscribe_url
from tidings.recipients.store import create_recipient

LABEL = "unsubscribe_url"


def mail_config(server: SmtpServer, certs: Certificate) -> dict[str, Any]:
    return {"kind": "email", "project": "alpha", "host": "127.0.0.1", "port": server.port, "security": "starttls",
            "username": USER, "password": PASSWORD, "ca_file": str(certs.cert), "from_address": "alerts@example.com",
            "to": ["ops@example.com"], "timeout": 5}


def plain_and_html(msg: Any) -> tuple[str, str]:
    return (msg.get_body(("plain",)).get_content().replace("\r\n", "\n"),
            msg.get_body(("html",)).get_content().replace("\r\n", "\n"))


async def test_the_headers_arrive_and_a_one_click_post_to_them_unsubscribes(
    make_api: Any, smtp: Any, certs: Certificate, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())
    server = smtp()
    config = {"integrations": {"mail": mail_config(server, certs)}, "routes": [{"project": "alpha", "to": ["mail"]}],
              "projects": {"alpha": {"topics": {"deploys": {}}}}}
    api = await make_api(config)
    async with api.hub.store.write() as conn:
        ann = await create_recipient(conn, "alpha", "ann", {"email": "ann@example.com"}, actor=SYSTEM)
    await api.hub.directory.reload("alpha")
    url = unsubscribe_url(api.hub.signer(), api.url, Unsubscribe(ann["id"], "deploys", "mail"))
    long = f"{api.url}/l/unsubscribe/{'x' * 400}"  # a long one must not be folded or encoded
    assert len(url) > 200
    message = Message(title="Deployed v2", body="all good", fields={"service": "api"},
                      labels={"topic": "deploys", LABEL: url})
    await api.hub.notify(message, project="alpha")

    async def arrived() -> bool:
        return bool(server.mails)

    await eventually(arrived, timeout=30)
    msg = server.mails[0].message
    assert msg["List-Unsubscribe"] == f"<{url}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, rich = plain_and_html(msg)
    assert f"Unsubscribe from messages like this: {url}" in text
    assert f'href="{url}"' in rich and ">Unsubscribe</a>" in rich
    # The label is not shown as a field (only the message's fields are).
    assert "service: api" in text and f"{LABEL}:" not in text and LABEL not in rich
    await api.hub.notify(Message(title="long", labels={LABEL: long}), project="alpha")

    async def both() -> bool:
        return len(server.mails) == 2

    await eventually(both, timeout=30)
    assert server.mails[1].message["List-Unsubscribe"] == f"<{long}>"
    assert b"=?utf-8?" not in server.mails[1].raw
    # What a mail client does with the headers (RFC 8058 section 3.1).
    target = msg["List-Unsubscribe"].strip("<>")
    r = await api.post(target.removeprefix(api.url), auth=False, content=msg["List-Unsubscribe-Post"].encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and "turned off" in r.text, r.text
    assert api.hub.directory.people("alpha").persons["ann"].prefs == {("deploys", "mail"): False}


@pytest.mark.parametrize("db", ["sqlite"])
@pytest.mark.parametrize("label", [
    "", "not a url", "javascript:alert(1)", "https://x.example/a>\r\nBcc: evil@example.com",
    "https://x.example/a b", "https://x.example/\"q", "ftp://x.example/u"
])
async def test_a_malformed_label_adds_nothing(make_api: Any, smtp: Any, certs: Certificate, label: str) -> None:
    server = smtp()
    api = await make_api({"integrations": {"mail": mail_config(server, certs)},
                          "routes": [{"project": "alpha", "to": ["mail"]}]})
    await api.hub.notify(Message(title="plain", labels={LABEL: label} if label else {}), project="alpha")

    async def arrived() -> bool:
        return bool(server.mails)

    await eventually(arrived, timeout=30)
    mail = server.mails[0]
    assert mail.rcpt_tos == ["ops@example.com"]
    msg = mail.message
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None and msg["Bcc"] is None
    text, _ = plain_and_html(msg)
    assert "Unsubscribe" not in text
