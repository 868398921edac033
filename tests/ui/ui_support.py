"""The web UI in a real browser: Debian's chromium through playwright, against a real
``tidings serve`` on SQLite (one per test module, from one ``tidings init``). The fixtures are
served by tests/ui/conftest.py; tests import the helpers from here (``from ui_support import ...``:
a test importing ``conftest`` would get whichever conftest came first on sys.path).

Fixtures:
- ``hub_site``: the running server (``url``, the admin's email and password, an API token, its folder);
  ``hub_site.api(method, path, json=...)`` calls its API as the admin (to set the stage).
- ``browser``: chromium, one per module (see there); ``page``: a fresh context and page per test (1280x900).
- ``sign_in(page, email, password)``; ``person(role)``: a user with that role in ``default``
  (email, password).
- ``check_page(page, name)``: axe-core on the page (no serious or critical violation) and, with
  ``TIDINGS_SCREENSHOTS=DIR`` (``make screenshots``), screenshots at 1280 and 375 px into DIR for a person to look.
- ``background``: an event loop in a thread, for the asyncio stand-ins (``background.run(coro)``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import TIDINGS, cli_env, free_port, tidings, wait_until

CHROMIUM = Path(os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
SHOTS = Path(os.environ["TIDINGS_SCREENSHOTS"]) if os.environ.get("TIDINGS_SCREENSHOTS") else None
"""Where :func:`check_page` writes screenshots; none unless set (four full-page shots and two re-layouts a page
cost the suite about a minute, and nobody looks at them in CI)."""
PASSWORD = re.compile(r"Password of (\S+) \(shown once.*?\):\s*\n\s*(\S+)", re.S)
TOKEN = re.compile(r"\btdg_[A-Za-z0-9_\-]{43}\b")


@dataclass
class Site:
    url: str
    email: str
    password: str
    token: str
    path: Path
    proc: subprocess.Popen[bytes]

    def api(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """The API as the site admin (its token), with ``headers`` (an ``If-Match``...)."""
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
                             timeout=30, **kwargs)


@pytest.fixture(scope="module")
def hub_site(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Site]:
    """``tidings init`` and ``tidings serve`` (SQLite, dispatching) in a folder of this module; a
    module's ``SITE_YAML`` is added to its tidings.yaml first (what a process reads at start only)."""
    path = tmp_path_factory.mktemp("ui-site")
    ran = tidings(path, "init").ok()
    extra = getattr(request.module, "SITE_YAML", "")
    if extra:
        (path / "tidings.yaml").write_text((path / "tidings.yaml").read_text() + "\n" + extra)
    email, password = PASSWORD.search(ran.out).groups()  # type: ignore[union-attr]
    [token] = TOKEN.findall(ran.out)
    port = free_port()
    env = cli_env(path, TIDINGS_PORT=str(port))
    log = open(path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(TIDINGS), "serve"], cwd=path, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and httpx.get(url + "/readyz", timeout=2).status_code == 200,
                   timeout=60, what="tidings serve ready")
        yield Site(url, email, password, token, path, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: while playwright's synchronous API is
    started it keeps its event loop marked running in this thread, and an asyncio test that the
    same xdist worker runs next could not start its own (the module's end stops it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"the UI tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, hub_site: Site) -> Iterator[Any]:
    context = browser.new_context(base_url=hub_site.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sign_in(page: Any, email: str, password: str) -> None:
    """Sign in through the sign-in page, as a person would."""
    page.goto("/ui/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/p/"))


@pytest.fixture
def admin_page(page: Any, hub_site: Site) -> Any:
    """A page signed in as the site admin."""
    sign_in(page, hub_site.email, hub_site.password)
    return page


_people = itertools.count(1)


@pytest.fixture
def person(hub_site: Site) -> Callable[[str], tuple[str, str]]:
    """``person("viewer")``: a new user with that role in ``default`` -> (email, password)."""

    def make(role: str, project: str = "default") -> tuple[str, str]:
        n = next(_people)
        email, password = f"{role}{n}-{os.getpid()}@example.com", f"a long passphrase {n} for {role}"
        r = hub_site.api("POST", "/api/v1/users", json={"email": email, "name": f"{role.title()} {n}", "password": password})
        assert r.status_code == 201, r.text
        r = hub_site.api("PUT", f"/api/v1/projects/{project}/members/{email}", json={"role": role})
        assert r.status_code in (200, 201), r.text
        return email, password

    return make


@functools.cache
def _axe_source() -> str:
    return AXE.read_text() + "\n;window.axe = axe;"


def check_page(page: Any, name: str) -> None:
    """axe-core finds no serious or critical violation on the page; screenshots at 1280 and 375 px (:data:`SHOTS`)."""
    page.evaluate(_axe_source())  # through the devtools protocol: the page's CSP rightly refuses an inline script
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"accessibility violations on {name}:\n" + "\n".join(bad)
    if SHOTS is None:
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size(size)


class Background:
    """An event loop in a thread: the asyncio stand-ins (fake Slack, sinks) run there while the
    browser test, which is synchronous, drives the page."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def background() -> Iterator[Background]:
    bg = Background()
    yield bg
    bg.close()


def pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


