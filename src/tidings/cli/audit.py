"""`tidings audit`: list, verify, export, verify-export, checkpoint, public-key, keygen."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _fail, _store, _when, emit, group, handled, out, print_json, run, table

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ..audit import Problem, Signer, Verified

audit_app = group("audit", "The tamper-evident audit trail: list, verify, export.")
PublicKeyOpt = Annotated[str | None, typer.Option(
    "--public-key", help="the public key (base64 or PEM, or a file holding it); default: the signing key's")]


def _config_dir(config: Path | None) -> Path:
    from ..config import config_path

    return config_path(config).resolve().parent


def _signer(config: Path | None, *, required: bool = True) -> Signer | None:
    from ..audit import load_signer
    from ..audit.checkpoints import KEY_ENV

    signer = load_signer(_config_dir(config))
    if signer is None and required:
        _fail(f"no audit signing key: set ${KEY_ENV} or run `tidings audit keygen`")
    return signer


def _public_key(value: str | None, config: Path | None) -> Ed25519PublicKey | None:
    from ..audit.checkpoints import parse_public_key

    if value is None:
        signer = _signer(config, required=False)
        return signer.public_key if signer is not None else None
    path = Path(value)
    if len(value) < 4096 and "\n" not in value and path.is_file():
        value = path.read_text()
    return parse_public_key(value)


def _report(result: Verified | Problem, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Print a verification result; exit 1 naming the first bad entry."""
    from ..audit import Problem

    if isinstance(result, Problem):
        if as_json:
            print_json({"ok": False, "seq": result.seq, "reason": result.reason, **(extra or {})})
            raise typer.Exit(1)
        _fail(str(result))
    data = {"ok": True, "first": result.first, "last": result.last, "checkpoints": result.checkpoints, **(extra or {})}
    emit(data, as_json, lambda: out.print(str(result) + "".join(f"\n{k}: {v}" for k, v in (extra or {}).items()),
                                          highlight=False))


@audit_app.command("list")
@handled
def audit_list(
    actor: Annotated[str | None, typer.Option(help="the actor's name (alice@example.com, cli:root), id or token id")] = None,
    action: Annotated[str | None, typer.Option(help="silence.create, or silence.* for every silence action")] = None,
    project: Annotated[str | None, typer.Option(help="only this project's entries")] = None,
    since: Annotated[str | None, typer.Option(help="only the last 30m, 1h, 7d...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    before: Annotated[int | None, typer.Option(min=1, help="next page: the seq printed after the table")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Audit entries, newest first."""
    from ..audit.query import list_entries
    from ..units import parse_duration

    seconds = parse_duration(since) if since is not None else None

    async def _list() -> dict[str, Any]:
        async with _store(config) as store, store.read() as conn:
            return await list_entries(conn, actor=actor, action=action, project=project, since=seconds,
                                      limit=limit, before=before)

    page = run(_list())

    def human() -> None:
        t = table("seq", "time", "actor", "action", "target", "project", "outcome", ids=())
        for e in page["items"]:
            who = e["actor_name"] or e["actor_id"] or e["actor"]
            t.add_row(str(e["seq"]), _when(e["at"]), f"{who} ({e['auth_method'] or e['actor']})", e["action"],
                      e["target"] or "", e["project"] or "", e["outcome"])
        out.print(t)
        if page["next"]:
            out.print(f"more: --before {page['next']}", highlight=False)

    emit(page, as_json, human)


@audit_app.command("verify")
@handled
def audit_verify(
    from_checkpoint: Annotated[bool, typer.Option(
        "--from-checkpoint", help="start at the last stored checkpoint with a valid signature (faster)")] = False,
    checkpoints: Annotated[Path | None, typer.Option(
        help="checkpoints kept elsewhere (an export, or `audit checkpoint --json` lines): catch a cut tail")] = None,
    public_key: PublicKeyOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the chain: exit 0 with the verified range, or 1 naming the first entry that was
    changed, deleted, inserted or reordered."""
    from ..audit import verify_store
    from ..audit.export import read_checkpoints

    key = _public_key(public_key, config)
    extra = read_checkpoints(checkpoints.open("rb")) if checkpoints is not None else []

    async def _verify() -> Any:
        async with _store(config) as store:
            return await verify_store(store, key, extra_checkpoints=extra, from_checkpoint=from_checkpoint)

    result = run(_verify())
    note = {} if key is not None else {"warning": "no public key: checkpoint signatures were not checked"}
    _report(result, as_json, note)


@audit_app.command("export")
@handled
def audit_export(
    since: Annotated[str | None, typer.Option(help="only entries of the last 1h, 7d... (from the checkpoint before)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here (mode 0600) instead of stdout")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="write it to this s3 integration instead, at <prefix>/audit/export-<time>.jsonl")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The trail as JSON lines with its signed checkpoints, verifiable offline with the public key
    alone (`tidings audit verify-export FILE --public-key KEY`)."""
    import time

    from ..audit.export import first_seq_since, iter_export
    from ..units import parse_duration

    seconds = parse_duration(since) if since is not None else None
    if seconds is not None and seconds <= 0:
        raise ValueError("--since must be a positive duration")
    signer = _signer(config, required=False)

    async def _export(sink: Any) -> dict[str, int]:
        counts = {"entries": 0, "checkpoints": 0}
        async with _store(config) as store:
            after = await first_seq_since(store, time.time() - seconds) if seconds is not None else 0
            async for line in iter_export(store, signer.public_key if signer else None, since_seq=after):
                sink.write(line + b"\n")
                if line.startswith(b'{"type":"entry"'):
                    counts["entries"] += 1
                elif line.startswith(b'{"type":"checkpoint"'):
                    counts["checkpoints"] += 1
        return counts

    if to is not None:
        if output is not None:
            raise ValueError("--to and --output: give one of them")
        data = _export_to(config, to, _export)
        emit(data, as_json, f"wrote {data['entries']} entries and {data['checkpoints']} checkpoint(s) to {data['object']}")
        return
    if output is None:
        run(_export(sys.stdout.buffer))
        sys.stdout.flush()
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        counts = run(_export(fh))
    emit({"file": str(output), **counts}, as_json,
         f"wrote {counts['entries']} entries and {counts['checkpoints']} checkpoint(s) to {output}")


def _export_to(config: Path | None, name: str, export: Any) -> dict[str, Any]:
    """Run ``export`` into memory and put it on the s3 integration ``name``."""
    import io

    from ..audit.archive import archive_of, export_key
    from ..errors import TidingsError
    from ._common import _on_hub

    async def _put(hub: Any) -> dict[str, Any]:
        archive = archive_of(dict(hub.notifiers), name)
        buffer = io.BytesIO()
        counts = await export(buffer)
        outcome = await archive.put(export_key(), buffer.getvalue(), "application/x-ndjson")
        if not outcome.ok:
            raise TidingsError(f"could not write the export to {name}: {outcome.error}")
        return {"object": (outcome.remote_id or "").split(" ")[0], **counts}

    result: dict[str, Any] = _on_hub(config, _put)
    return result


@audit_app.command("verify-export")
@handled
def audit_verify_export(
    file: Annotated[Path, typer.Argument(help="a file written by `tidings audit export`")],
    public_key: Annotated[str, typer.Option("--public-key", help="the public key (base64 or PEM, or a file holding it)")],
    as_json: JsonOpt = False,
) -> None:
    """Verify an export offline, with the public key alone (no database, no config)."""
    from ..audit.checkpoints import parse_public_key
    from ..audit.export import verify_export

    path = Path(public_key)
    text = path.read_text() if len(public_key) < 4096 and "\n" not in public_key and path.is_file() else public_key
    with file.open("rb") as fh:
        result = verify_export(fh, parse_public_key(text))
    _report(result, as_json)


@audit_app.command("checkpoint")
@handled
def audit_checkpoint(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Sign a checkpoint of the current head now (a running hub also does, periodically)."""
    from ..audit import make_checkpoint
    from ..audit.checkpoints import load_checkpoints

    signer = _signer(config)
    assert signer is not None

    async def _sign() -> tuple[Any, bool]:
        async with _store(config) as store:
            made = await make_checkpoint(store, signer)
            if made is not None:
                return made, True
            stored = await load_checkpoints(store)
            return (stored[-1] if stored else None), False

    cp, created = run(_sign())
    if cp is None:
        emit({"created": False, "tree_size": 0}, as_json, "the trail is empty: nothing to sign")
        return
    line = (f"signed checkpoint at entry {cp.tree_size} (key {cp.key_id})" if created
            else f"entry {cp.tree_size} is checkpointed already (key {cp.key_id})")
    emit({"type": "checkpoint", **cp.as_dict(), "created": created}, as_json, line)


@audit_app.command("public-key")
@handled
def audit_public_key(
    pem: Annotated[bool, typer.Option("--pem", help="PEM instead of base64")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the public key that checks the checkpoints (give it to auditors)."""
    from ..audit.checkpoints import public_key_pem, public_key_text

    signer = _signer(config)
    assert signer is not None
    text = public_key_pem(signer.public_key).strip() if pem else public_key_text(signer.public_key)
    emit({"public_key": text, "key_id": signer.key_id}, as_json, text)


@audit_app.command("keygen")
@handled
def audit_keygen(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Create the signing key (tidings.audit.key, mode 0600) when there is none."""
    from ..audit import load_signer
    from ..audit.checkpoints import KEY_ENV, key_path, public_key_text

    if os.environ.get(KEY_ENV):
        _fail(f"the signing key comes from ${KEY_ENV}: nothing to create")
    path = key_path(_config_dir(config))
    if path.exists():
        _fail(f"{path} exists: keep it (checkpoints signed with it are checked with its public key)")
    signer = load_signer(_config_dir(config), create=True)
    assert signer is not None
    key = public_key_text(signer.public_key)
    emit({"key_file": str(path), "public_key": key, "key_id": signer.key_id}, as_json,
         f"wrote {path} (mode 0600): back it up, keep it off the database host if you can\npublic key: {key}")
