"""Failed sign-ins are limited per account and per client address (moving windows; memory, or
Redis shared by every worker): 429 with Retry-After, audited, and the password not checked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from helpers import eventually
from signin_support import PASSWORD, add_user, browser_fixture, entries  # noqa: F401  (fixtures)

from tidings.accounts import passwords
from tidings.server import create_app

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"])


def limits(account: int = 100, ip: int = 100, window: str = "15m") -> dict[str, Any]:
    return {"server": {"login_failures_per_account": account, "login_failures_per_ip": ip,
                       "login_failure_window": window}}


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords checked (a 429 must check none)."""
    seen: list[str] = []
    real = passwords.check_password
    monkeypatch.setattr(passwords, "check_password", lambda stored, pw: seen.append(pw) or real(stored, pw))
    return seen


async def login(client: httpx.AsyncClient, email: str, password: str, **headers: str) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password}, headers=headers)


async def test_an_account_is_limited_after_its_failures(
    make_api: Any, browser: Callable[..., httpx.AsyncClient], verified: list[str],
) -> None:
    api = await make_api(limits(account=3), dispatch=False)
    await add_user(api, "alice@example.com")
    await add_user(api, "bob@example.com")
    client = browser(api)
    assert [(await login(client, "alice@example.com", f"wrong {i} password")).status_code for i in range(2)] == [401, 401]
    assert (await login(client, "ALICE@example.com", PASSWORD)).status_code == 200  # a success forgives nothing:
    assert (await login(client, "alice@example.com", "wrong 3 password")).status_code == 401
    checked = len(verified)
    r = await login(client, "alice@example.com", PASSWORD)  # ...so the right password is refused now
    assert r.status_code == 429, r.text
    assert r.json() == {"error": "too many requests",
                        "detail": f"too many failed sign-ins for this account: try again in {r.headers['retry-after']} s"}
    assert 1 <= int(r.headers["retry-after"]) <= 900
    assert len(verified) == checked  # the password was not even checked
    assert "tidings_session" not in r.headers.get("set-cookie", "")
    assert (await login(client, "bob@example.com", PASSWORD)).status_code == 200  # another account, same address
    refused = [e for e in await entries(api, "auth.login") if e["outcome"] == "denied"]
    assert [(e["target"], e["after"]) for e in refused] == [
        ("user/alice@example.com", {"reason": "rate limited", "limit": "account"})]
    assert PASSWORD not in str(await entries(api))


async def test_an_address_is_limited_across_accounts_and_unknown_emails_count(
    make_api: Any, browser: Callable[..., httpx.AsyncClient], verified: list[str],
) -> None:
    api = await make_api(limits(account=100, ip=3), dispatch=False)
    await add_user(api, "alice@example.com")
    client = browser(api)
    for email in ("nobody@example.com", "ghost@example.com", "alice@example.com"):
        assert (await login(client, email, "wrong password!")).status_code == 401
    r = await login(client, "alice@example.com", PASSWORD)
    assert r.status_code == 429 and "this address" in r.json()["detail"], r.text
    r = await login(client, "someone-new@example.com", "anything at all")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert len(verified) == 3
    refused = [e["after"] for e in await entries(api, "auth.login") if e["outcome"] == "denied"]
    assert refused == [{"reason": "rate limited", "limit": "address"}] * 2


@SQLITE_ONLY
async def test_parallel_guesses_cannot_overrun_the_limit(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api(limits(account=3), dispatch=False)
    await add_user(api, "alice@example.com")
    client = browser(api, limits=httpx.Limits(max_connections=20))
    answers = await asyncio.gather(*(login(client, "alice@example.com", f"guess number {i}") for i in range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 3 + [429] * 9, statuses
    assert [e["outcome"] for e in await entries(api, "auth.login")].count("failed") == 3


@SQLITE_ONLY
async def test_the_window_moves_on(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    api = await make_api(limits(account=1, window="1s"), dispatch=False)
    await add_user(api, "alice@example.com")
    client = browser(api)
    assert (await login(client, "alice@example.com", "wrong password!")).status_code == 401
    r = await login(client, "alice@example.com", PASSWORD)
    assert r.status_code == 429 and r.headers["retry-after"] == "1", r.text

    async def signed_in() -> bool:  # the failure leaves the window within about a second
        return (await login(client, "alice@example.com", PASSWORD)).status_code == 200

    await eventually(signed_in, timeout=5, interval=0.1)


async def _proxied(make_hub: Any, serve_asgi: Any, data: dict[str, Any]) -> str:
    """A server that trusts X-Forwarded-For from 127.0.0.1 (so each test can be its own address)."""
    hub = await make_hub(data, dispatch=False)
    return str(await serve_asgi(create_app(hub), lifespan="on", proxy_headers=True, forwarded_allow_ips="127.0.0.1"))


@SQLITE_ONLY
async def test_workers_sharing_redis_share_the_counts(make_hub: Any, serve_asgi: Any, redis_url: str) -> None:
    data = {**limits(account=3, ip=5), "dispatcher": {"rate_limit_storage": redis_url}}
    first = await _proxied(make_hub, serve_asgi, data)
    second = await _proxied(make_hub, serve_asgi, data)  # another worker on the same database and Redis
    email = f"{uuid.uuid4().hex}@example.com"  # Redis outlives the test: keys of their own
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    async with httpx.AsyncClient(base_url=first) as a, httpx.AsyncClient(base_url=second) as b:
        assert (await login(a, email, "wrong password!", **{"X-Forwarded-For": address})).status_code == 401
        assert (await login(b, email, "wrong password!", **{"X-Forwarded-For": address})).status_code == 401
        assert (await login(a, email, "wrong password!", **{"X-Forwarded-For": address})).status_code == 401
        r = await login(b, email, "wrong password!", **{"X-Forwarded-For": address})
        assert r.status_code == 429 and "account" in r.json()["detail"], r.text
        # The address: 3 failures so far, 2 more on other accounts, then the address is full.
        for other in ("x1", "x2"):
            assert (await login(a, f"{other}{email}", "wrong password!", **{"X-Forwarded-For": address})).status_code == 401
        r = await login(b, f"x3{email}", "wrong password!", **{"X-Forwarded-For": address})
        assert r.status_code == 429 and "address" in r.json()["detail"], r.text
        other_address = address.replace("10.", "11.", 1)
        assert (await login(b, f"x3{email}", "wrong password!", **{"X-Forwarded-For": other_address})).status_code == 401


@SQLITE_ONLY
async def test_without_redis_each_worker_counts_alone(make_api: Any, browser: Callable[..., httpx.AsyncClient]) -> None:
    # Nothing listens on port 1: the limit is kept in memory meanwhile, and sign-ins still work.
    api = await make_api({**limits(account=2), "dispatcher": {"rate_limit_storage": "redis://127.0.0.1:1/0"}},
                         dispatch=False)
    await add_user(api, "alice@example.com")
    client = browser(api)
    assert (await login(client, "alice@example.com", "wrong password!")).status_code == 401
    assert (await login(client, "alice@example.com", PASSWORD)).status_code == 200
    assert (await login(client, "alice@example.com", "wrong password!")).status_code == 401
    assert (await login(client, "alice@example.com", PASSWORD)).status_code == 429
