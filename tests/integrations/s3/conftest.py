from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from s3_local import FaultProxy, boto, moto_server


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def s3(moto: str) -> Any:
    return boto(moto)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def locked_bucket(s3: Any) -> str:
    name = f"locked-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
async def proxy(moto: str) -> AsyncIterator[FaultProxy]:
    p = await FaultProxy(moto).start()
    yield p
    await p.stop()
