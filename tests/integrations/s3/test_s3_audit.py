"""The audit trail to S3: `audit.archive` copies each new signed checkpoint to an s3 integration (a
copy that fails is tried again), and `tidings audit export --to NAME` writes a verifiable export there."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import Project, tidings
from helpers import LOCAL, eventually
from s3_local import FaultProxy
from test_s3 import archive, keys

from tidings.audit import Signer, Verified, load_signer
from tidings.audit.checkpoints import load_checkpoints, parse_public_key
from tidings.audit.export import read_checkpoints, verify_export
from tidings.errors import ConfigError


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    made = load_signer(tmp_path, create=True)
    assert made is not None
    return made


def audited(ops: dict[str, Any], **audit: Any) -> dict[str, Any]:
    return {"integrations": {"archive": ops, "inbox": {"kind": "inbox"}}, "default": {"to": ["inbox"]},
            "audit": {"checkpoint_every": 3, "checkpoint_interval": "1d", "archive": "archive", **audit}}


async def _changes(hub: Any, n: int) -> None:
    for i in range(n):
        await hub.silence({"service": f"s{i}"}, 60, by="test")


async def test_each_new_checkpoint_is_copied_and_a_failed_copy_is_tried_again(
    make_hub: Any, proxy: FaultProxy, s3: Any, bucket: str, signer: Signer
) -> None:
    proxy.script = ["slowdown"]  # the first copy fails
    hub = await make_hub(audited(archive(proxy.url, bucket)))
    for n, changes in [(1, 5), (2, 3)]:
        await _changes(hub, changes)

        async def copied(n: int = n) -> bool:
            signed = [cp.tree_size for cp in await load_checkpoints(hub.store)]
            wanted = [f"tidings/prod/audit/checkpoints/{size}.json" for size in signed]
            return len(signed) == n and sorted(keys(s3, bucket)) == sorted(wanted)

        await eventually(copied, timeout=20)
    assert proxy.script == []
    for cp in await load_checkpoints(hub.store):
        body = s3.get_object(Bucket=bucket, Key=f"tidings/prod/audit/checkpoints/{cp.tree_size}.json")["Body"].read()
        assert read_checkpoints([body]) == [cp]


@pytest.mark.parametrize("db", ["sqlite"])
def test_audit_archive_must_name_an_s3_integration(make_config: Any, moto: str, bucket: str) -> None:
    with pytest.raises(ConfigError, match="audit.archive: unknown integration 'nope'"):
        make_config(audited(archive(moto, bucket), archive="nope"))
    with pytest.raises(ConfigError, match="integration 'inbox' is inbox; audit copies go to an s3 integration"):
        make_config(audited(archive(moto, bucket), archive="inbox"))


def test_audit_export_to_s3_is_verifiable(project: Project, moto: str, s3: Any, bucket: str) -> None:
    public = tidings(project.path, "audit", "public-key", "--json").ok().json["public_key"]
    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    config["integrations"]["archive"] = {**archive(moto, bucket), "allow_destinations": LOCAL}
    (project.path / "tidings.yaml").write_text(yaml.safe_dump(config))
    tidings(project.path, "audit", "checkpoint").ok()
    made = tidings(project.path, "audit", "export", "--to", "archive", "--json").ok().json
    (key,) = keys(s3, bucket)
    assert key.startswith("tidings/prod/audit/export-") and key.endswith(".jsonl")
    assert made["object"] == f"s3://{bucket}/{key}" and made["entries"] >= 1 and made["checkpoints"] >= 1
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    result = verify_export(io.BytesIO(body), parse_public_key(public))
    assert isinstance(result, Verified), result
    assert json.loads(body.splitlines()[0])["type"] == "tidings-audit-export-v1"
    tidings(project.path, "audit", "export", "--to", "inbox").one_line_error("can't hold audit copies", code=1)
