"""`tidings config`: validate tidings.yaml, the configuration revisions (history, show, diff,
rollback), import the file now (reload), export the current revision as YAML, print the JSON Schema."""

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError
from ._common import (
    ConfigOpt,
    JsonOpt,
    _store,
    _vault,
    _when,
    cli_actor,
    emit,
    group,
    handled,
    load,
    out,
    run,
    sqlite_file,
    table,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..config.imports import FileStatus
    from ..config.revisions import Revision

config_app = group("config", "Check the configuration, its revisions (history, show, diff, rollback), reload, export.")
RevisionArg = Annotated[str, typer.Argument(help="a revision number, or `current`", show_default=True)]


@config_app.command("validate")
@handled
def config_validate(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check tidings.yaml: one line per problem, with its path; exit code 2 when invalid.

    Destinations the outbound guard would refuse (literal private addresses, metadata names) are
    problems; with the secret key available, every ${vault:NAME} must be stored in the vault.
    When the database has revisions: which one is current and whether the file changed since
    its last import."""
    from ..config import config_path, destination_problems, load_config

    path = config_path(config)
    try:
        cfg = load_config(config, required=True)
        problems = destination_problems(cfg) + run(_missing_secrets(cfg, config))
        if problems:
            raise ConfigError(problems, str(path))
    except ConfigError as exc:
        if not as_json:
            raise
        emit({"file": str(path), "ok": False, "problems": exc.problems}, True, "")
        raise typer.Exit(2) from None
    data: dict[str, Any] = {"file": str(path), "ok": True, "integrations": len(cfg.integrations),
                            "routes": len(cfg.routes)}
    lines = [f"{path}: ok ({len(cfg.integrations)} integrations, {len(cfg.routes)} routes)"]
    status = run(_file_status(cfg))
    if status is not None:
        data.update(revision=status.current, imported=status.imported, file_changed=status.changed)
        lines.append(_status_line(status, cfg.server.config_source))
    emit(data, as_json, "\n".join(lines))


def _status_line(status: "FileStatus", mode: str) -> str:
    line = f"revision {status.current} is current"
    if mode == "database":
        return f"{line}; server.config_source is database: the file only seeded the first revision"
    since = f"revision {status.imported} was imported" if status.imported else "its last import"
    if status.changed:
        return f"{line}; the file changed since {since}; `tidings config reload` imports it"
    if status.imported and status.imported != status.current:
        return (f"{line}; the file is as imported in revision {status.imported} (what changed since:"
                f" `tidings config diff {status.imported} {status.current}`)")
    return f"{line}; the file is as imported"


async def _file_status(cfg: "Config") -> "FileStatus | None":
    """The database's revisions against this file, or None when there is no database (or no
    revision) to compare with: validating a file never creates, migrates or needs a database."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..config.imports import file_status
    from ..errors import TidingsError
    from ..store.engine import Store

    db = sqlite_file(cfg.server.database)
    if db is not None and not db.exists():
        return None
    try:
        store = Store(cfg.server.database, synchronous=cfg.server.sqlite_synchronous)
    except (TidingsError, ValueError):  # no PostgreSQL driver: nothing to compare with
        return None
    try:
        async with store.read() as conn:
            status = await file_status(conn, cfg)
    except (SQLAlchemyError, OSError):  # unreachable, or not migrated to revisions yet
        return None
    finally:
        await store.close()
    return status if status.current else None


async def _missing_secrets(cfg: "Config", config: Path | None) -> list[str]:
    """``${vault:NAME}`` references to secrets the vault does not hold (checked only when the
    key is available: without it, nothing can be read anyway and `serve` says so)."""
    from ..config import config_path
    from ..security.vault import load_keys

    refs = {f"integrations.{name}.{field}": secret
            for name, settings in cfg.integrations.items() for field, secret in settings.vault_refs().items()}
    if not refs or load_keys(config_path(config).resolve().parent) is None:
        return []
    stored: set[str] = set()
    db = sqlite_file(cfg.server.database)
    if db is None or db.exists():
        async with _vault(config) as vault:
            stored = set(await vault.names())
    return [f"{where}: ${{vault:{secret}}} is not stored (run `tidings secret set {secret}`)"
            for where, secret in refs.items() if secret not in stored]


# -- revisions ---------------------------------------------------------------------------------------
def _number(value: str) -> int | None:
    """A revision argument: a number, or None for ``current``."""
    if value.strip().lower() == "current":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{value!r} is not a revision: give its number (1, 2, ...) or `current`")
    return number


async def _revision(conn: Any, number: int | None) -> "Revision":
    """Revision ``number`` (None: the current one); NotFound names what exists."""
    from ..config import revisions
    from ..errors import NotFound

    if number is not None:
        return await revisions.get(conn, number)
    head = await revisions.current(conn)
    if head is None:
        raise NotFound("no configuration revision yet: `tidings config reload` (or starting tidings) imports"
                       " tidings.yaml as the first")
    return head


def _read_revisions(config: Path | None, *numbers: int | None) -> list["Revision"]:
    async def _read() -> list["Revision"]:
        async with _store(config) as store, store.read() as conn:
            return [await _revision(conn, n) for n in numbers]

    return run(_read())


def _plain_text(text: str) -> None:
    """Text as it is (YAML, a diff): no markup, no wrapping."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _title(rev: "Revision") -> str:
    return (f"revision {rev.number} · {_when(rev.created_at)} · {rev.author} · {rev.source}"
            + (f" · {rev.comment}" if rev.comment else ""))


@config_app.command("history")
@handled
def config_history(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="how many revisions, newest first")] = 20,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Configuration revisions, newest first: number, time, author, source, comment."""
    from rich.markup import escape

    from ..config import revisions

    async def _history() -> tuple[list["Revision"], int]:
        async with _store(config) as store, store.read() as conn:
            return await revisions.history(conn, limit=limit), await revisions.current_number(conn)

    items, head = run(_history())
    data = [{**r.summary(), "current": r.number == head} for r in items]

    def human() -> None:
        if not items:
            out.print("no configuration revisions yet", highlight=False)
            return
        t = table("revision", "time", "author", "source", "comment")
        for r in items:
            t.add_row(f"{r.number}{' (current)' if r.number == head else ''}", _when(r.created_at),
                      escape(r.author), r.source, escape(r.comment or ""))
        out.print(t)

    emit(data, as_json, human)


@config_app.command("show")
@handled
def config_show(revision: RevisionArg = "current", config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """A revision's document (integrations, routes, default) as YAML; `--json`: with its details."""
    from ..config.export import dump_yaml, ordered_document

    [rev] = _read_revisions(config, _number(revision))
    if as_json:
        emit({**rev.summary(), "document": rev.document}, True, "")
        return
    _plain_text(f"# {_title(rev)}\n" + dump_yaml(ordered_document(rev.document)))


@config_app.command("diff")
@handled
def config_diff(
    old: Annotated[str, typer.Argument(help="the revision to compare from (a number, or `current`)")],
    new: Annotated[str, typer.Argument(help="the revision to compare to (default: current)")] = "current",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed from revision A to B, per integration and route (secrets never shown)."""
    from ..config.diff import diff_documents, format_diff

    a, b = _read_revisions(config, _number(old), _number(new))
    changes = diff_documents(a.document, b.document)
    if as_json:
        emit(changes, True, "")
        return
    _plain_text(f"revision {a.number} -> {b.number}\n{format_diff(changes)}")


@config_app.command("rollback")
@handled
def config_rollback(
    revision: Annotated[str, typer.Argument(help="the revision to return to (its number)")],
    comment: Annotated[str | None, typer.Option("--comment", help="why (default: 'rollback to revision N')")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="don't ask for confirmation")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a new revision equal to revision N (validated, audited as you, source `cli`).

    Running processes switch to it within seconds. Refused under `server.config_source: file`."""
    from ..config import revisions
    from ..config.diff import diff_documents, format_diff
    from ..config.document import to_config
    from ..errors import TidingsError

    number = _number(revision)
    cfg, _ = load(config)
    if cfg.server.config_source == "file":
        raise revisions.ReadOnlyConfig(
            "server.config_source is `file`: only tidings.yaml changes the configuration; revert the change in"
            " the file and run `tidings config reload` (`tidings config export` writes any revision as YAML)")
    if not yes and not sys.stdin.isatty():
        raise TidingsError("rollback asks for confirmation on a terminal: give --yes to roll back without asking")
    actor = cli_actor()

    async def _rollback() -> tuple["Revision", bool, int, list[dict[str, Any]]]:
        async with _store(config, loaded=cfg) as store:
            async with store.read() as conn:
                target = await _revision(conn, number)
                head = await _revision(conn, None)
            changes = diff_documents(head.document, target.document)
            if not yes:
                _plain_text(f"revision {head.number} (current) -> revision {target.number}\n{format_diff(changes)}")
                typer.confirm(f"Make a new revision equal to revision {target.number}?", abort=True, err=True)
            async with store.write() as conn:
                made = await revisions.commit(
                    conn, target.document, actor=actor, source="cli",
                    comment=comment or f"rollback to revision {target.number}", expected=head.number,
                    validate=lambda doc: to_config(doc, cfg),
                )
            return *made, target.number, changes

    rev, made, to, changes = run(_rollback())
    line = (f"revision {rev.number} made, equal to revision {to}" if made
            else f"unchanged: the current revision {rev.number} equals revision {to}")
    emit({"revision": rev.number, "made": made, "equal_to": to, "changes": changes}, as_json, line)


@config_app.command("reload")
@handled
def config_reload(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Import tidings.yaml now, if it changed since its last import (as at start and on SIGHUP).

    Running processes switch to the new revision by themselves. An invalid file, or an import the
    validation refuses: one line per problem, exit code 2, nothing changes."""
    from ..config import load_config
    from ..config.imports import import_file

    cfg = load_config(config, required=True)

    async def _reload() -> tuple["Revision", bool]:
        async with _store(config, loaded=cfg) as store:
            return await import_file(store, cfg, actor=cli_actor())

    rev, made = run(_reload())
    line = f"revision {rev.number} imported" if made else f"unchanged (revision {rev.number})"
    if not made and cfg.server.config_source == "database":
        line += "; server.config_source is database: the file only seeded the first revision"
    emit({"revision": rev.number, "imported": made, "config_source": cfg.server.config_source}, as_json, line)


@config_app.command("export")
@handled
def config_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to FILE (default: stdout)")] = None,
    with_file_secrets: Annotated[bool, typer.Option(
        "--with-file-secrets", help="write the secrets the revision takes from the file (${file:...}) as this"
        " machine's file has them (else the references stay, explained)")] = False,
    config: ConfigOpt = None,
) -> None:
    """The current revision as a complete tidings.yaml (this file's server, dispatcher, retention and
    audit sections, then integrations, routes, default) that imports back to the same revision."""
    import os

    from ..config.export import export_yaml

    cfg, _ = load(config)

    async def _current() -> "Revision":
        async with _store(config, loaded=cfg) as store, store.read() as conn:
            return await _revision(conn, None)

    rev = run(_current())
    header = f"tidings.yaml from configuration {_title(rev)}\n(`tidings config export`)"
    text = export_yaml(rev.document, cfg, with_file_secrets=with_file_secrets, header=header)
    if output is None:
        _plain_text(text)
        return
    if with_file_secrets:  # it may hold secrets: only its owner reads it
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    out.print(f"revision {rev.number} written to {output}", highlight=False, markup=False)


@config_app.command("schema")
def config_schema_cmd(as_json: Annotated[bool, typer.Option("--json", help="(the output is JSON already)")] = True) -> None:
    """Print the JSON Schema of tidings.yaml (for editor completion)."""
    from ..config import config_schema

    sys.stdout.write(json.dumps(config_schema(), indent=2) + "\n")


@config_app.command("status")
@handled
def config_status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The current configuration revision and the one each running process (server, worker) runs;
    a process that could not switch says why. Exit code 1 when one is behind."""
    from typing import Any

    from ..config import live, revisions
    from ._common import _store, _when, out, table

    async def _read() -> dict[str, Any]:
        async with _store(config) as store, store.read() as conn:
            current = await revisions.current_number(conn)
            return {"current": current, "processes": [p.as_dict() for p in await live.processes(conn)]}

    data = run(_read())
    behind = [p for p in data["processes"] if p["revision"] != data["current"] and not p["silent"]]

    def human() -> None:
        out.print(f"current revision: {data['current']}", highlight=False)
        t = table("process", "revision", "since", "problem", ids=())
        for p in data["processes"]:
            problem = p["problem"] or ""
            if p["silent"]:
                problem = f"silent since {_when(p['seen_at'])}: stopped without saying so? {problem}".strip()
            t.add_row(p["owner"], str(p["revision"]), _when(p["applied_at"]), problem)
        out.print(t)

    emit(data, as_json, human)
    if behind:
        raise typer.Exit(1)
