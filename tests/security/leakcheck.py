"""What the no-leak tests share: secrets drawn by hypothesis, a peer that echoes what it is sent,
a config that sends every secret form tidings derives, and scanners for 8-character leaks."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web
from helpers import LOCAL
from hypothesis import strategies as st
from sqlalchemy import select

from tidings.store.tables import metadata

WINDOW = 8
USER = "ops"
AM_USER = "am"
SPECIALS = "!$&'()*+,;=:@/?#%[]~-_.\"\\\\"


def _core(seed: bytes, tag: str, size: int) -> str:
    """High-entropy letters and digits: a window of them never appears in a text by chance."""
    return base64.b32encode(hashlib.sha256(tag.encode() + seed).digest()).decode().lower()[:size]


@st.composite
def secret(draw: st.DrawFn, tag: str, specials: str = SPECIALS) -> str:
    """A secret of 12-40 characters, with characters that need encoding in URLs and headers."""
    seed = draw(st.binary(min_size=4, max_size=4))
    chars = list(_core(seed, tag, draw(st.integers(12, 40))))
    if specials:
        for at, char in draw(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(specials)), max_size=6)):
            chars.insert(min(at, len(chars)), char)
    return "".join(chars)


@st.composite
def whsec(draw: st.DrawFn, tag: str) -> str:
    seed = draw(st.binary(min_size=4, max_size=4))
    return "whsec_" + base64.b64encode(hashlib.sha256(tag.encode() + seed).digest()[:24]).decode()


@dataclass(frozen=True)
class Secrets:
    password: str  # in a URL's userinfo: sent as Authorization: Basic
    query: str  # ?token=
    bearer: str  # Authorization: Bearer
    slack: str  # xoxb- bot token
    signing: str  # whsec_ that signs what a webhook sends
    receiving: str  # whsec_ that inbound requests must be signed with
    am_password: str  # Alertmanager basic auth (inbound)

    def forms(self, seen: Iterable[str] = ()) -> list[str]:
        """Every form tidings sends or compares, computed here independently of tidings.redact;
        ``seen``: forms a peer actually received (the query as aiohttp encoded it...)."""
        out = [self.password, quote(self.password, safe=""), b64(f"{USER}:{self.password}"),
               self.query, quote(self.query, safe=""), self.bearer, self.slack, self.am_password, b64(f"{AM_USER}:{self.am_password}"), *seen]
        for key in (self.signing, self.receiving):
            raw = base64.b64decode(key.removeprefix("whsec_"))
            out += [key, key.removeprefix("whsec_"), base64.b64encode(raw).decode(), raw.hex()]
        # As a JSON answer or log line shows them. ('Bearer <token>' is sent too: its windows beyond
        # the token's own would be 'Bearer ' and a few characters, which is how JSON shows a mask.)
        return out + [json.dumps(form)[1:-1] for form in out]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRETS = st.builds(
    Secrets,
    password=secret("password"),
    query=secret("query"),
    bearer=secret("bearer"),
    slack=secret("slack", specials="").map(lambda s: "xoxb-" + s),
    signing=whsec("signing"),
    receiving=whsec("receiving"),
    am_password=secret("am"),
)


def config(s: Secrets, peer_port: int) -> dict[str, Any]:
    """Integrations that send every secret form to the echoing peer, and receivers that hold secrets."""
    once = {"retry": {"max_attempts": 1}, "breaker": {"failures": 1000}, "allow_destinations": LOCAL}
    base = f"127.0.0.1:{peer_port}"
    return {
        "integrations": {
            "basic": {"kind": "webhook", "url": f"http://{USER}:{quote(s.password, safe='')}@{base}/in?token="
                      f"{quote(s.query, safe='')}&x=1", **once},
            "bearer": {"kind": "webhook", "url": f"http://{base}/b", "secret": s.signing,
                       "headers": {"Authorization": f"Bearer {s.bearer}"}, **once},
            "chat": {"kind": "slack", "token": s.slack, "channel": "#ops", "api_url": f"http://{base}/api", **once},
            "recv": {"kind": "webhook", "receive_secret": s.receiving, "receive": {}},
            "am": {"kind": "alertmanager", "username": AM_USER, "password": s.am_password},
        },
        "default": {"to": ["basic", "bearer", "chat"]},
    }


SENDERS = ("basic", "bearer", "chat")


@dataclass
class EchoPeer:
    """Answers every request with ``status`` and a body that repeats the request (its path and
    query, its Authorization header, every header, its body) after ``pad`` dots, so that a secret
    may cross the 300-character cut."""

    status: int = 500
    pad: int = 290
    seen: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.seen.append(request.path_qs)
        auth = request.headers.get("Authorization", "")
        echo = f"{request.path_qs} {auth} {json.dumps(dict(request.headers))} {body}"
        return web.Response(status=self.status, text="." * self.pad + echo)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def query_forms(self) -> list[str]:
        """The ``token=`` value as it arrived (aiohttp's own encoding of it)."""
        return [p.split("token=", 1)[1].split("&", 1)[0] for p in self.seen if "token=" in p]


def _text(value: Any) -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else repr(value)


async def dump_database(store: Any) -> list[str]:
    """Every row of every table, as text."""
    out = []
    async with store.read() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                out.append(f"{table.name}: " + " | ".join(_text(v) for v in row))
    return out


def leaks(texts: Iterable[str], forms: Iterable[str]) -> list[str]:
    """The 8-character windows of any form that appear in any text (with the text around them)."""
    blob = "\n".join(texts)
    grams = {blob[i : i + WINDOW] for i in range(len(blob) - WINDOW + 1)}
    found = []
    for form in forms:
        for i in range(len(form) - WINDOW + 1):
            window = form[i : i + WINDOW]
            if window in grams:
                at = blob.index(window)
                found.append(f"{window!r} of {form!r} in ...{blob[max(0, at - 60) : at + 60]!r}...")
    return found


@contextlib.contextmanager
def capture_logs(buffer: Any) -> Iterator[None]:
    """tidings' own logging setup (JSON, masking processor) writing to ``buffer``, with fresh
    loggers in every tidings module (one cached by an earlier configure would write elsewhere)."""
    import tidings.logs

    saved = structlog.get_config()
    stderr, sys.stderr = sys.stderr, buffer
    replaced: list[tuple[Any, Any]] = []
    try:
        tidings.logs.configure(level="DEBUG", json=True)
        structlog.configure(cache_logger_on_first_use=False)
        for name, module in list(sys.modules.items()):
            if name.startswith("tidings") and hasattr(module, "log") and hasattr(module.log, "warning"):
                replaced.append((module, module.log))
                module.log = structlog.get_logger(name)
        yield
    finally:
        for module, log in replaced:
            module.log = log
        sys.stderr = stderr
        structlog.configure(**saved)
