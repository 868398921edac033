"""Settings of the ``s3`` kind: where the archive goes (bucket, prefix, region, an S3-compatible
endpoint), the credentials, server-side encryption and Object Lock retention."""

from __future__ import annotations

import importlib.util
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ..base import IntegrationSettings

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z0-9][a-z0-9\-]{0,62}$")
MISSING_EXTRA = "the s3 integration needs the aiobotocore package, which is not installed: pip install 'tidings[s3]'"


class ObjectLock(BaseModel):
    """Object Lock retention set on every object written (the bucket must have Object Lock enabled)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        description="GOVERNANCE: users with s3:BypassGovernanceRetention may still delete; COMPLIANCE: nobody may, "
        "not even the root account, until the date"
    )
    days: int = Field(ge=1, le=36_500, description="each object is retained this many days after it is written")


class S3Settings(IntegrationSettings):
    outbound = ("endpoint_url",)
    kind: Literal["s3"]
    bucket: str = Field(description="the bucket (it must exist; tidings never creates it)")
    prefix: str = Field("", max_length=512, description="key prefix, e.g. tidings/prod (no leading slash)")
    region: str = Field("us-east-1", description="the bucket's region (any name for MinIO/Ceph; 'auto' for R2)")
    endpoint_url: str | None = Field(
        None, description="an S3-compatible service (MinIO, Ceph RGW, Cloudflare R2); default: AWS for the region"
    )
    path_style: bool | None = Field(
        None, description="path-style addressing (endpoint/bucket/key); default: on with endpoint_url, off for AWS"
    )
    access_key_id: SecretStr | None = Field(None, description="default: the AWS credential chain (env, profile, role)")
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = Field(None, description="for temporary (STS) credentials")
    sse: Literal["AES256", "aws:kms"] | None = Field(None, description="server-side encryption of each object")
    kms_key_id: str | None = Field(None, max_length=2048, description="sse: aws:kms only: the key (default: aws/s3)")
    object_lock: ObjectLock | None = Field(None, description="retention per object: {mode, days}")
    include: list[Literal["deliveries"]] = Field(
        default_factory=list, description="deliveries: add the message's delivery outcomes known at write time"
    )
    batch: bool = Field(
        False, description="gzip JSON lines: the deliveries ready together (up to max_batch) in one object "
        "<prefix>/yyyy/mm/dd/HH-MM-<worker>-<seq>.jsonl.gz, instead of one object per message",
    )
    max_batch: int = Field(500, ge=1, le=10_000, description="batch: true only: most messages in one object")
    skip_existing: bool | None = Field(
        None,
        description="HeadObject first and skip the put when the object is there with the same content (a retry "
        "then makes no new version); default: on with object_lock",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not BUCKET.match(v) or ".." in v:
            raise ValueError("an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not REGION.match(v):
            raise ValueError("a region name such as eu-west-1")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if any(part in ("", ".", "..") for part in v.split("/")) and v:
            raise ValueError("a key prefix such as tidings/prod (no empty, '.' or '..' parts)")
        if any(ord(c) < 32 for c in v):
            raise ValueError("no control characters")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http(s) URL such as https://minio.internal:9000")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("no credentials, query or fragment in the URL (use access_key_id and secret_access_key)")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> S3Settings:
        if importlib.util.find_spec("aiobotocore") is None:
            raise ValueError(MISSING_EXTRA)
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.batch and self.include:
            raise ValueError("include: [deliveries] is for one object per message (batch: false)")
        if self.batch and self.skip_existing:
            raise ValueError("skip_existing is for one object per message (batch: false): a batch's key is new each time")
        if self.kms_key_id is not None and self.sse != "aws:kms":
            raise ValueError("kms_key_id needs sse: aws:kms")
        return self

    @property
    def key_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def checks_existing(self) -> bool:
        if self.batch:
            return False
        return self.object_lock is not None if self.skip_existing is None else self.skip_existing

    @property
    def uses_path_style(self) -> bool:
        return self.endpoint_url is not None if self.path_style is None else self.path_style


__all__ = ["MISSING_EXTRA", "ObjectLock", "S3Settings"]
