"""`tidings config`: validate tidings.yaml, print its JSON Schema."""

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigError
from ._common import ConfigOpt, JsonOpt, _vault, emit, group, handled, run, sqlite_file

if TYPE_CHECKING:
    from ..config import Config

config_app = group("config", "Check the configuration or print its JSON Schema.")


@config_app.command("validate")
@handled
def config_validate(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check tidings.yaml: one line per problem, with its path; exit code 2 when invalid.

    Destinations the outbound guard would refuse (literal private addresses, metadata names) are
    problems; with the secret key available, every ${vault:NAME} must be stored in the vault."""
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
    data = {"file": str(path), "ok": True, "integrations": len(cfg.integrations), "routes": len(cfg.routes)}
    emit(data, as_json, f"{path}: ok ({len(cfg.integrations)} integrations, {len(cfg.routes)} routes)")


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
    behind = [p for p in data["processes"] if p["revision"] != data["current"]]

    def human() -> None:
        out.print(f"current revision: {data['current']}", highlight=False)
        t = table("process", "revision", "since", "problem", ids=())
        for p in data["processes"]:
            t.add_row(p["owner"], str(p["revision"]), _when(p["applied_at"]), p["problem"] or "")
        out.print(t)

    emit(data, as_json, human)
    if behind:
        raise typer.Exit(1)
