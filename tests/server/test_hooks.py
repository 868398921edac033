"""``POST /hooks/{name}`` is served before FastAPI's stack (server/app.py); requests the fast path
declines still reach the same endpoint, or the framework's guards and errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from tidings.server.hooks import takes

SECRET = "hooks-test-secret"


def github(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": "issues",
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


def scope(path: str, method: str = "POST", query: bytes = b"", root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query, "root_path": root_path}


def test_which_requests_take_the_fast_path() -> None:
    assert takes(scope("/hooks/gh")) == "gh"
    assert takes(scope("/hooks/gh", query=b"a=1")) == "gh"
    assert takes(scope("/hooks/gh", method="GET")) is None
    assert takes(scope("/hooks/gh/")) is None
    assert takes(scope("/hooks/")) is None
    assert takes(scope("/hooks/g\x00h")) is None
    assert takes(scope("/hooks/gh", query=b"a=%00")) is None
    assert takes(scope("/hooks/gh", root_path="/tidings")) is None
    assert takes(scope("/api/v1/messages")) is None
    assert takes({"type": "lifespan"}) is None


async def test_fast_path_and_router_answer_alike(make_api: Any) -> None:
    api = await make_api({"integrations": {"gh": {"kind": "github", "secret": SECRET}}})
    body = json.dumps({"action": "opened", "issue": {"number": 1, "title": "t"}, "repository": {"full_name": "o/r"}}).encode()
    r = await api.post("/hooks/gh", content=body, headers=github(body), auth=False)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "received"
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    bad = await api.post("/hooks/gh", content=body, headers={**github(body), "x-hub-signature-256": "sha256=00"}, auth=False)
    assert bad.status_code == 401 and bad.json()["error"] == "rejected"
    nobody = await api.post("/hooks/nobody", content=body, headers=github(body), auth=False)
    assert nobody.status_code == 404 and nobody.json()["error"] == "not found"
    assert (await api.get("/hooks/gh", auth=False)).status_code == 405
    nul = await api.post("/hooks/gh?x=%00", content=body, headers=github(body), auth=False)
    assert nul.status_code == 400, "the guard still refuses NUL characters"
