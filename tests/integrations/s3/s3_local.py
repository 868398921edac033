"""A local S3 for the tests: moto's server on 127.0.0.1 (a free port), and a small proxy in front of it
that answers as S3 documents what moto does not do (an unknown access key: 403 InvalidAccessKeyId)
and injects faults (503 SlowDown, 500 InternalError, a reset connection) on demand."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from aiohttp import ClientSession, web
from moto.server import ThreadedMotoServer

KEY_ID = "AKIATESTONLY0000S3XX"
SECRET = "test-only-secret-9f8e7d6c5b4a39281706"
CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
ERROR = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{text}</Message></Error>'
FAULTS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def boto(endpoint: str) -> Any:
    """A plain (sync) boto3 client on the moto server, to set up buckets and read back what was written."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET)


class FaultProxy:
    """Forwards to moto; refuses unknown access keys as S3 does; plays ``script`` (one fault per request) first."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.script: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.keys = {KEY_ID}
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.url = ""

    async def start(self) -> FaultProxy:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._session = ClientSession(auto_decompress=False)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def puts(self) -> int:
        return sum(1 for method, _ in self.requests if method == "PUT")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        match = CREDENTIAL.search(request.headers.get("Authorization", ""))
        if match is None or match.group(1) not in self.keys:
            return _error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
        if self.script:
            fault = self.script.pop(0)
            if fault == "reset":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return _error(*FAULTS[fault])
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=await request.read()) as answer:
            body = await answer.read()
            keep = {k: v for k, v in answer.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
            return web.Response(status=answer.status, headers=keep, body=body)


def _error(status: int, code: str, text: str) -> web.Response:
    return web.Response(status=status, body=ERROR.format(code=code, text=text), content_type="application/xml")
