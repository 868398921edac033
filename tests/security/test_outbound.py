"""The outbound guard (SSRF): private, loopback, link-local, unique-local, CGNAT, multicast, reserved
and cloud metadata destinations are refused unless allow-listed, on the address actually connected
to (odd IP spellings, DNS answers), for HTTP and SMTP; a refusal is permanent, with its reason."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from fake_smtp import PASSWORD, USER
from helpers import LOCAL
from sink import Sink

from tidings import Message
from tidings.compat._channels import teams_notifier
from tidings.config import destination_problems, parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import Attempt, Context, OutcomeStatus
from tidings.integrations.email import EmailNotifier
from tidings.integrations.webhook import WebhookIntegration
from tidings.security.outbound import DestinationRefused, Destinations, GuardedResolver

HINT = "allow it with server.allow_destinations"

# (host as written in a URL, what the reason says, the allow-list entry that lets it through)
SPELLINGS = [
    ("169.254.169.254", "destination 169.254.169.254 is a cloud metadata address", "169.254.169.254"),
    ("metadata.google.internal", "destination metadata.google.internal is a cloud metadata service",
     "metadata.google.internal"),
    ("[::ffff:169.254.169.254]", "(169.254.169.254) is a cloud metadata address", "169.254.169.254/32"),
    ("[fd00:ec2::254]", "destination fd00:ec2::254 is a cloud metadata address", "fd00:ec2::254"),
    ("100.100.100.200", "destination 100.100.100.200 is a cloud metadata address", "100.100.100.200"),
    ("2130706433", "destination 2130706433 (127.0.0.1) is a loopback address", "127.0.0.1/32"),
    ("0x7f000001", "destination 0x7f000001 (127.0.0.1) is a loopback address", "127.0.0.0/8"),
    ("0177.0.0.1", "destination 0177.0.0.1 (127.0.0.1) is a loopback address", "127.0.0.1"),
    ("127.1", "destination 127.1 (127.0.0.1) is a loopback address", "127.0.0.1"),
    ("127.0.0.1", "destination 127.0.0.1 is a loopback address", "127.0.0.1"),
    ("[::1]", "destination ::1 is a loopback address", "::1/128"),
    ("10.0.0.1", "destination 10.0.0.1 is a private address", "10.0.0.0/8"),
    ("172.16.5.4", "destination 172.16.5.4 is a private address", "172.16.0.0/12"),
    ("192.168.1.1", "destination 192.168.1.1 is a private address", "192.168.0.0/16"),
    ("169.254.1.1", "destination 169.254.1.1 is a link-local address", "169.254.0.0/16"),
    ("[fe80::1]", "destination fe80::1 is a link-local address", "fe80::/10"),
    ("[fc00::1]", "destination fc00::1 is a unique-local address", "fc00::/7"),
    ("[fd12:3456::1]", "destination fd12:3456::1 is a unique-local address", "fd00::/8"),
    ("100.64.0.1", "destination 100.64.0.1 is a shared (CGNAT) address", "100.64.0.0/10"),
    ("0.0.0.0", "destination 0.0.0.0 is an unspecified address", "0.0.0.0/32"),
    ("[::]", "destination :: is an unspecified address", "::/128"),
    ("224.0.0.1", "destination 224.0.0.1 is a multicast address", "224.0.0.0/4"),
    ("[ff02::1]", "destination ff02::1 is a multicast address", "ff00::/8"),
    ("240.0.0.1", "destination 240.0.0.1 is a reserved address", "240.0.0.0/4"),
    ("[64:ff9b::a00:1]", "destination 64:ff9b::a00:1 (10.0.0.1) is a private address", "10.0.0.1"),
    ("[2002:7f00:1::]", "destination 2002:7f00:1:: (127.0.0.1) is a loopback address", "127.0.0.1"),
    ("[::ffff:10.0.0.1]", "(10.0.0.1) is a private address", "10.0.0.0/8"),
    ("192.0.2.10", "destination 192.0.2.10 is a special-purpose (non-public) address", "192.0.2.0/24"),
]


def _host(written: str) -> str:
    return written.strip("[]")


@pytest.mark.parametrize(("written", "reason", "entry"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_each_spelling_is_refused_with_its_reason_and_allowed_when_listed(written: str, reason: str,
                                                                          entry: str) -> None:
    refusal = Destinations().host_refusal(_host(written))
    assert refusal is not None and reason in refusal and refusal.endswith(HINT), refusal
    assert Destinations.parse([entry]).host_refusal(_host(written)) is None
    assert Destinations.parse(["203.0.113.0/24", "other.example.com"]).host_refusal(_host(written)) is not None


@pytest.mark.parametrize("host", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::", "example.com"])
def test_public_destinations_pass(host: str) -> None:
    assert Destinations().host_refusal(host) is None


def test_metadata_needs_an_entry_of_its_own_not_a_wide_network() -> None:
    wide = Destinations.parse(["0.0.0.0/0", "::/0", "169.254.0.0/16", "fd00::/8"])
    assert wide.host_refusal("10.0.0.1") is None
    for host in ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "metadata.google.internal"):
        assert "cloud metadata" in (wide.host_refusal(host) or ""), host
    assert "cloud metadata" in (Destinations.anywhere().host_refusal("169.254.169.254") or "")


# -- sends through the real session ----------------------------------------------------------------
class Listener:
    """A TCP server on 127.0.0.1 that counts connections (and answers nothing)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def webhook(url: str, *, server_allow: list[str] | None = None, **extra: Any) -> WebhookIntegration:
    config = parse_config({"integrations": {"ops": {"kind": "webhook", "url": url, "timeout": 5, **extra}}})
    context = Context(store=None, threads=None, destinations=Destinations.parse(server_allow or []))  # type: ignore[arg-type]
    return WebhookIntegration("ops", config.integrations["ops"], context)


def attempt(n: int = 1) -> Attempt:
    return Attempt("dlv-1", "msg-1", n, 1_700_000_000.0, Message("Disk full"))


async def post(n: WebhookIntegration) -> Any:
    try:
        return await n.send(n.render(Message("Disk full")), attempt())
    finally:
        await n.close()


LOOPBACK = "(127.0.0.1) is a loopback address"


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("2130706433", LOOPBACK),
        ("0x7f000001", LOOPBACK),
        ("0177.0.0.1", LOOPBACK),
        ("127.1", LOOPBACK),
        ("127.0.0.1.", "destination 127.0.0.1 is a loopback address"),
        ("[::ffff:127.0.0.1]", LOOPBACK),
        ("[2002:7f00:1::]", LOOPBACK),
        ("127.0.0.1", "destination 127.0.0.1 is a loopback address"),
        ("localhost", "destination localhost resolves to"),
    ],
)
async def test_a_refused_send_is_permanent_and_never_connects(written: str, reason: str) -> None:
    async with Listener() as peer:
        outcome = await post(webhook(f"http://{written}:{peer.port}/hook"))
    assert outcome.status is OutcomeStatus.PERMANENT, outcome
    assert reason in (outcome.error or "") and HINT in (outcome.error or ""), outcome
    assert peer.connections == 0


async def test_metadata_and_private_literals_fail_before_any_connection() -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/",
                "http://[::ffff:169.254.169.254]/", "http://10.0.0.1/", "http://127.0.0.1:6379/"):
        outcome = await post(webhook(url))
        assert outcome.status is OutcomeStatus.PERMANENT and HINT in (outcome.error or ""), (url, outcome)


async def test_allowed_spellings_reach_the_local_peer(sink: Sink) -> None:
    port = sink.url.rsplit(":", 1)[1]
    for written in ("127.0.0.1", "0x7f000001", "localhost"):
        outcome = await post(webhook(f"http://{written}:{port}/hook", server_allow=LOCAL))
        assert outcome.ok, (written, outcome)
    outcome = await post(webhook(f"http://127.0.0.1:{port}/hook", allow_destinations=["127.0.0.1"]))
    assert outcome.ok, "an integration's own allow list counts too"
    assert len(sink.received) == 4


# -- DNS: the answer is what is checked ------------------------------------------------------------
@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Names the system resolver answers as the test says (a DNS rebinding, a hosts file)."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in table:
            return real(table[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield table


async def test_a_public_looking_name_that_resolves_to_a_private_address_is_refused(
    hosts: dict[str, str], sink: Sink
) -> None:
    hosts["hooks.example.com"] = "127.0.0.1"
    port = sink.url.rsplit(":", 1)[1]
    url = f"http://hooks.example.com:{port}/hook"
    outcome = await post(webhook(url))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error == f"destination hooks.example.com resolves to 127.0.0.1, a loopback address; {HINT}"
    assert sink.received == []
    assert (await post(webhook(url, server_allow=["127.0.0.1/32"]))).ok, "allowed by address"
    assert (await post(webhook(url, server_allow=["hooks.example.com"]))).ok, "allowed by name"
    assert len(sink.received) == 2


async def test_an_allowed_name_still_may_not_resolve_to_a_metadata_address(hosts: dict[str, str]) -> None:
    hosts["hooks.example.com"] = "169.254.169.254"
    outcome = await post(webhook("http://hooks.example.com/hook", server_allow=["hooks.example.com"]))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error == f"destination hooks.example.com resolves to 169.254.169.254, a cloud metadata address; {HINT}"


class Scripted(AbstractResolver):
    """A resolver answering from a list of answers, one per lookup (a rebinding DNS server)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                          proto=0, flags=0)
            for a in self.answers.pop(0)
        ]

    async def close(self) -> None:
        pass


async def test_rebinding_answers_are_checked_each_time_and_private_ones_dropped() -> None:
    resolver = GuardedResolver(Destinations(), Scripted(["93.184.216.34"], ["10.0.0.5"], ["93.184.216.34", "127.0.0.1"]))
    assert [a["host"] for a in await resolver.resolve("rebind.example.com", 80)] == ["93.184.216.34"]
    with pytest.raises(DestinationRefused, match="rebind.example.com resolves to 10.0.0.5, a private address"):
        await resolver.resolve("rebind.example.com", 80)
    kept = await resolver.resolve("rebind.example.com", 80)
    assert [a["host"] for a in kept] == ["93.184.216.34"], "only the checked address is connected to"


# -- through the hub: dead, with the reason, no retries ----------------------------------------------
async def test_a_refused_delivery_is_dead_at_once_with_its_reason(make_hub: Any, sink: Sink) -> None:
    hooks = {"kind": "webhook", "url": sink.url + "/hook", "retry": {"base": 0.05, "cap": 0.1}}
    hub = await make_hub({"server": {"allow_destinations": []}, "integrations": {"ops": hooks},
                          "default": {"to": ["ops"]}})
    d = (await hub.wait((await hub.notify(Message("refused"))).id))["deliveries"][0]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert d["last_error"] == f"destination 127.0.0.1 is a loopback address; {HINT}"
    assert sink.received == []


async def test_the_same_send_is_delivered_when_allowed(make_hub: Any, sink: Sink) -> None:
    hub = await make_hub({"server": {"allow_destinations": ["127.0.0.1/32"]},
                          "integrations": {"ops": {"kind": "webhook", "url": sink.url + "/hook"}},
                          "default": {"to": ["ops"]}})
    d = (await hub.wait((await hub.notify(Message("allowed"))).id))["deliveries"][0]
    assert d["status"] == "delivered" and len(sink.received) == 1


# -- SMTP ---------------------------------------------------------------------------------------------
def mailer(server: Any, certs: Any, host: str = "127.0.0.1", allow: list[str] | None = None) -> EmailNotifier:
    config = parse_config({"integrations": {"mail": {
        "kind": "email", "host": host, "port": server.port, "from_address": "alerts@example.com",
        "to": ["ops@example.com"], "ca_file": str(certs.cert), "username": USER, "password": PASSWORD,
        "timeout": 5}}})
    context = Context(store=None, threads=None, destinations=Destinations.parse(allow or []))  # type: ignore[arg-type]
    return EmailNotifier("mail", config.integrations["mail"], context)


async def mail(n: EmailNotifier) -> Any:
    m = Message("Disk full")
    return await n.send(n.render(m), Attempt("dlv-1", "msg-1", 1, 1_700_000_000.0, m))


@pytest.fixture
async def mail_server(smtp: Any) -> AsyncIterator[Any]:
    yield smtp()


async def test_an_smtp_host_is_refused_before_connecting(mail_server: Any, certs: Any) -> None:
    outcome = await mail(mailer(mail_server, certs))
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error == f"destination 127.0.0.1 is a loopback address; {HINT}"
    assert mail_server.logins == [] and mail_server.mails == []
    assert (await mailer(mail_server, certs, allow=LOCAL).test()).ok


async def test_smtp_checks_the_resolved_address_and_verifies_tls_against_the_name(
    mail_server: Any, certs: Any, hosts: dict[str, str]
) -> None:
    hosts["mail.example.com"] = "127.0.0.1"
    refused = await mail(mailer(mail_server, certs, host="mail.example.com"))
    assert refused.status is OutcomeStatus.PERMANENT
    assert refused.error == f"destination mail.example.com resolves to 127.0.0.1, a loopback address; {HINT}"
    # Allowed, it connects to the checked address, but TLS still verifies the certificate against
    # the configured name (the test certificate names localhost and 127.0.0.1, not mail.example.com).
    wrong_name = await mail(mailer(mail_server, certs, host="mail.example.com", allow=["mail.example.com"]))
    assert wrong_name.status is OutcomeStatus.PERMANENT
    assert "certificate verification failed for mail.example.com" in (wrong_name.error or "")
    delivered = await mail(mailer(mail_server, certs, host="localhost", allow=LOCAL))
    assert delivered.ok, delivered
    assert len(mail_server.mails) == 1 and mail_server.mails[0].tls


# -- configuration -----------------------------------------------------------------------------------
def test_config_validate_reports_literal_destinations_it_would_refuse() -> None:
    config = parse_config({
        "server": {"allow_destinations": ["10.0.0.0/8"]},
        "integrations": {
            "meta": {"kind": "webhook", "url": "http://169.254.169.254/latest/meta-data/"},
            "mapped": {"kind": "webhook", "url": "http://[::ffff:169.254.169.254]/"},
            "decimal": {"kind": "slack", "webhook_url": "http://2130706433:6379/services/T000/B000/XXXXXXXXXXXXXXXX"},
            "gce": {"kind": "email", "host": "metadata.google.internal", "from_address": "a@example.com",
                    "to": ["b@example.com"]},
            "internal": {"kind": "webhook", "url": "http://10.1.2.3/hook"},
            "own": {"kind": "webhook", "url": "http://127.0.0.1:6379/", "allow_destinations": ["127.0.0.1"]},
            "named": {"kind": "webhook", "url": "https://hooks.example.com/x"},
        },
    })
    assert destination_problems(config) == [
        f"integrations.meta.url: destination 169.254.169.254 is a cloud metadata address; {HINT}",
        f"integrations.mapped.url: destination ::ffff:169.254.169.254 (169.254.169.254) is a cloud metadata"
        f" address; {HINT}",
        f"integrations.decimal.webhook_url: destination 2130706433 (127.0.0.1) is a loopback address; {HINT}",
        f"integrations.gce.host: destination metadata.google.internal is a cloud metadata service; {HINT}",
    ]
    assert "XXXXXXXXXXXXXXXX" not in " ".join(destination_problems(config)), "a webhook URL is a secret"


def test_bad_allow_list_entries_are_reported_with_their_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"server": {"allow_destinations": ["127.1", "not a host", "10.0.0.0/33"]},
                      "integrations": {"ops": {"kind": "webhook", "url": "https://x.example.com",
                                               "allow_destinations": ["0x7f000001"]}}})
    assert info.value.problems == [
        "server.allow_destinations[0]: '127.1' means 127.0.0.1: write the address as 127.0.0.1",
        "server.allow_destinations[1]: 'not a host' is neither a network (10.0.0.0/8) nor a host name",
        "server.allow_destinations[2]: '10.0.0.0/33' is not a valid network (write e.g. 10.0.0.0/8 or fd00::/8)",
        "integrations.ops.allow_destinations[0]: '0x7f000001' means 127.0.0.1: write the address as 127.0.0.1",
    ]


# -- the compatibility facades -------------------------------------------------------------------------
async def test_facades_send_anywhere_but_to_cloud_metadata(sink: Sink) -> None:
    local = teams_notifier(sink.url + "/teams")
    m = Message("Disk full")
    try:
        assert (await local.send(local.render(m), attempt())).ok, "internal destinations work as they did"
    finally:
        await local.close()
    meta = teams_notifier("https://169.254.169.254/latest/meta-data/")
    try:
        outcome = await meta.send(meta.render(m), attempt())
    finally:
        await meta.close()
    assert outcome.status is OutcomeStatus.PERMANENT and "cloud metadata address" in (outcome.error or "")
