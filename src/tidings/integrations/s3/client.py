"""One aiobotocore S3 client per integration (guarded, no retries of its own, no proxy from the
environment), the object puts the archive makes, and how S3's answers map to an :class:`Outcome`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ...security.outbound import DestinationRefused, Destinations, GuardedResolver
from ..base import Outcome
from .settings import S3Settings

CREDENTIALS = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
    "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "InvalidSecurity",
})
"""Codes that a retry can't fix and every later put would get too: the integration is disabled."""
TRANSIENT = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "OperationAborted", "503", "500", "502", "504",
})
NO_LOCK = ("ObjectLockConfigurationNotFoundError",)


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    body: bytes
    content_type: str
    content_encoding: str | None = None

    @property
    def md5(self) -> bytes:
        return hashlib.md5(self.body, usedforsecurity=False).digest()


class S3Client:
    """The integration's client, opened on first use (once, even when puts start together)."""

    def __init__(self, settings: S3Settings, destinations: Destinations, timeout: float, concurrency: int) -> None:
        self.settings = settings
        self.destinations = destinations
        self.timeout = timeout
        self.concurrency = concurrency
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._opening = asyncio.Lock()
        self.host = urlsplit(settings.endpoint_url).hostname if settings.endpoint_url else None

    async def client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                self._client = await self._open()
        return self._client

    async def _open(self) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        s = self.settings
        config = AioConfig(
            region_name=s.region,
            connect_timeout=min(self.timeout, 10.0),
            read_timeout=self.timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # the dispatcher retries, with backoff
            max_pool_connections=self.concurrency,
            proxies={},  # never a proxy from the environment: the guard must see the real destination
            s3={"addressing_style": "path" if s.uses_path_style else "virtual"},
            request_checksum_calculation="when_required",  # we send Content-MD5; S3-compatibles lack CRC32 trailers
            response_checksum_validation="when_required",
            connector_args={"resolver": GuardedResolver(self.destinations)},
        )
        credentials: dict[str, Any] = {}
        if s.access_key_id is not None and s.secret_access_key is not None:
            credentials = {
                "aws_access_key_id": s.access_key_id.get_secret_value(),
                "aws_secret_access_key": s.secret_access_key.get_secret_value(),
                "aws_session_token": s.session_token.get_secret_value() if s.session_token else None,
            }
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            get_session().create_client("s3", endpoint_url=s.endpoint_url, config=config, **credentials)
        )
        self._stack = stack
        return client

    def _guard(self) -> None:
        """aiohttp never resolves an IP literal, so the guard checks the endpoint's host here."""
        if self.host is not None and (reason := self.destinations.host_refusal(self.host)):
            raise DestinationRefused(reason)

    async def put(self, put: Put, *, lock: bool = True, check_existing: bool = False) -> str:
        """Write ``put``; its ETag (or ``unchanged <etag>`` when it was there already with the same content)."""
        self._guard()
        s = self.settings
        client = await self.client()
        md5 = put.md5
        if check_existing:
            etag = await self._existing(client, put.key, md5)
            if etag is not None:
                return f"unchanged {etag}"
        args: dict[str, Any] = {
            "Bucket": s.bucket, "Key": put.key, "Body": put.body, "ContentType": put.content_type,
            "ContentMD5": base64.b64encode(md5).decode(), "Metadata": {"tidings-md5": md5.hex()},
        }
        if put.content_encoding:
            args["ContentEncoding"] = put.content_encoding
        if s.sse is not None:
            args["ServerSideEncryption"] = s.sse
            if s.kms_key_id:
                args["SSEKMSKeyId"] = s.kms_key_id
        if lock and s.object_lock is not None:
            args["ObjectLockMode"] = s.object_lock.mode
            args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=s.object_lock.days)
        answer = await client.put_object(**args)
        return str(answer.get("ETag", "")).strip('"')

    async def _existing(self, client: Any, key: str, md5: bytes) -> str | None:
        """The ETag of the object at ``key`` when it holds the same bytes (by our metadata, or an MD5 ETag)."""
        from botocore.exceptions import ClientError

        try:
            head = await client.head_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        etag = str(head.get("ETag", "")).strip('"')
        if head.get("Metadata", {}).get("tidings-md5") == md5.hex() or etag == md5.hex():
            return etag
        return None

    async def check(self) -> str:
        """That the bucket exists and we may use it, and with object_lock that Object Lock is on. Writes nothing."""
        from botocore.exceptions import ClientError

        self._guard()
        s = self.settings
        client = await self.client()
        await client.head_bucket(Bucket=s.bucket)
        if s.object_lock is None:
            return f"bucket {s.bucket} exists"
        try:
            conf = await client.get_object_lock_configuration(Bucket=s.bucket)
        except ClientError as exc:
            if _code(exc) in NO_LOCK:
                raise LockMissing(s.bucket) from None
            raise
        if conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise LockMissing(s.bucket)
        return f"bucket {s.bucket} exists and has Object Lock enabled"

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


class LockMissing(Exception):
    def __init__(self, bucket: str) -> None:
        super().__init__(
            f"bucket {bucket} does not have Object Lock enabled, which object_lock needs (Object Lock is turned on "
            "when a bucket is created: create a new bucket with it, or remove object_lock)"
        )


def _code(exc: Any) -> str:
    err = getattr(exc, "response", {}) or {}
    code = str(err.get("Error", {}).get("Code") or "")
    return code or str(err.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")


def _refused(exc: BaseException) -> DestinationRefused | None:
    """The guard's refusal behind ``exc`` (botocore wraps aiohttp's errors in its own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DestinationRefused):
            return current
        seen.add(id(current))
        inner = getattr(current, "kwargs", {}).get("error")
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return None


def classify(exc: BaseException, settings: S3Settings) -> Outcome:
    """The outcome of a failed S3 call."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    where = f"s3://{settings.bucket}" + (f" at {settings.endpoint_url}" if settings.endpoint_url else "")
    if (refused := _refused(exc)) is not None:
        return Outcome.permanent(str(refused))
    if isinstance(exc, LockMissing):
        return Outcome.permanent(str(exc))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Outcome.permanent(f"no AWS credentials for {where}: set access_key_id and secret_access_key", disable=True)
    if isinstance(exc, ClientError):
        code = _code(exc)
        text = exc.response.get("Error", {}).get("Message") or ""
        said = f"{code}: {text}" if text else code
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in ("NoSuchBucket", "404") and exc.operation_name in ("PutObject", "HeadBucket"):
            return Outcome.permanent(f"bucket {settings.bucket} does not exist ({where}; {said})", disable=True)
        if code in TRANSIENT:  # RequestTimeTooSkewed is a 403 that a synced clock fixes
            return Outcome.retry(f"{where} answered {said} (HTTP {status})")
        if code in CREDENTIALS or status == 403:
            return Outcome.permanent(f"{where} refused our credentials ({said}): check access_key_id, "
                                     "secret_access_key and the IAM policy (docs/s3.md)", disable=True)
        if code == "InvalidRequest" and settings.object_lock is not None and "lock" in text.lower():
            return Outcome.permanent(f"{where} refused the Object Lock retention: {said}")
        if code in TRANSIENT or status >= 500 or status == 429:
            return Outcome.retry(f"{where} answered {said} (HTTP {status})")
        return Outcome.permanent(f"{where} refused the object: {said} (HTTP {status})")
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return Outcome.retry(f"timed out talking to {where}")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | HTTPClientError | OSError):
        return Outcome.retry(f"could not reach {where}: {type(exc).__name__}")
    return Outcome.retry(f"writing to {where} failed: {type(exc).__name__}: {exc}")


__all__ = ["LockMissing", "Put", "S3Client", "classify"]
