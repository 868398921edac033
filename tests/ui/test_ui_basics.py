"""The UI's pages without a browser: who may reach them, their headers, the static files."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import httpx
from helpers import routes_of
from ui_support import Site

from tidings.server import create_app
from tidings.ui.render import assets


@contextlib.contextmanager
def _signed_in(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=30) as client:
        r = client.post("/ui/login", data={"email": site.email, "password": site.password, "next": "/ui/"},
                        headers={"Origin": site.url})
        assert r.status_code == 303, r.text
        yield client


def test_every_page_without_a_session_goes_to_the_sign_in_page(hub_site: Site) -> None:
    from tidings import Hub
    from tidings.config import parse_config

    app = create_app(Hub(parse_config({"integrations": {"inbox": {"kind": "inbox"}}})))
    pages = sorted({path for method, path, _ in routes_of(app) if path.startswith("/ui/") and method == "GET"}
                   - {"/ui/login", "/ui/static/{name}", "/ui/switch"})
    assert "/ui/p/{project}/" in pages
    for path in pages:
        url = re.sub(r"\{[^}]+\}", "x", path).replace("/p/x/", "/p/default/")
        r = httpx.get(hub_site.url + url, timeout=30)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), (path, r.status_code)
    assert httpx.get(hub_site.url + "/", timeout=30).headers["location"] == "/ui/"


def test_pages_carry_a_strict_content_security_policy(hub_site: Site) -> None:
    with _signed_in(hub_site) as client:
        r = client.get("/ui/p/default/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text  # no inline script: the policy would block it


def test_static_files_are_named_by_their_content_and_cached_for_good(hub_site: Site) -> None:
    page = httpx.get(hub_site.url + "/ui/login", timeout=30).text
    names = re.findall(r'/ui/static/([^"]+)', page)
    assert {n.split(".")[0] for n in names} >= {"ui", "htmx", "icon"}
    for name in names:
        r = httpx.get(f"{hub_site.url}/ui/static/{name}", timeout=30)
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        assert r.content == assets()[name][1]
    stale = re.sub(r"\.[0-9a-f]{10}\.", ".0000000000.", names[0])
    assert httpx.get(f"{hub_site.url}/ui/static/{stale}", timeout=30).status_code == 404
    assert httpx.get(f"{hub_site.url}/ui/static/LICENSE-htmx.txt", timeout=30).status_code == 404


def test_a_sign_in_posted_from_another_site_is_refused(hub_site: Site) -> None:
    r = httpx.post(hub_site.url + "/ui/login", data={"email": hub_site.email, "password": hub_site.password},
                   headers={"Origin": "https://evil.example"}, timeout=30)
    assert r.status_code == 403 and "another site" in r.text
    assert "tidings_session" not in r.headers.get("set-cookie", "")
    r = httpx.post(hub_site.url + "/ui/login", data={"email": hub_site.email, "password": hub_site.password}, timeout=30)
    assert r.status_code == 403  # no Origin nor Referer: a form sign-in must show where it came from


def test_a_change_without_the_csrf_token_is_refused(hub_site: Site) -> None:
    with _signed_in(hub_site) as client:
        r = client.post("/ui/logout", data={})
        assert client.get("/ui/p/default/").status_code == 200  # the session did not end
        page = client.get("/ui/p/default/").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        client.post("/ui/logout", data={"csrf_token": token})
        assert client.get("/ui/p/default/").status_code == 303
    assert r.status_code == 403 and "CSRF" in r.text


def test_a_project_the_person_cannot_see_is_refused_with_the_apis_words(hub_site: Site) -> None:
    with _signed_in(hub_site) as client:
        r = client.get("/ui/p/Not_A_Slug/")
    assert r.status_code == 422
