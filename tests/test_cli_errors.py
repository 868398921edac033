"""One-line errors where the start of a command used to print a traceback: a ${vault:NAME} that
is not stored (serve), a database that can't be reached (any command); and `config validate`
reports vault references that don't exist."""

from __future__ import annotations

from pathlib import Path

import yaml
from cli_support import Project, free_port, tidings, vault_config, whsec


def test_serve_with_a_missing_vault_secret_is_one_line(project: Project) -> None:
    vault_config(project, "missing")
    ran = tidings(project.path, "serve", timeout=120, TIDINGS_PORT=str(free_port()))
    ran.one_line_error("no secret named 'missing'", "tidings secret set missing", code=1)


def unreachable_postgres(project: Project) -> None:
    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    config["server"]["database"] = f"postgresql://tidings@127.0.0.1:{free_port()}/nothing"
    (project.path / "tidings.yaml").write_text(yaml.safe_dump(config))


def test_an_unreachable_database_is_one_line(project: Project) -> None:
    unreachable_postgres(project)
    for args in (["deliveries"], ["token", "list"], ["send", "-t", "x"], ["serve"]):
        line = tidings(project.path, *args, timeout=120, TIDINGS_PORT=str(free_port())).one_line_error("database", code=1)
        assert "127.0.0.1" in line and ("refused" in line.lower() or "connect" in line.lower()), line


def test_config_validate_reports_vault_references_not_stored(project: Project) -> None:
    p = project.path
    vault_config(project, "HOOK_SECRET")
    ran = tidings(p, "config", "validate")
    ran.one_line_error("integrations.signed.secret", "${vault:HOOK_SECRET} is not stored",
                       "tidings secret set HOOK_SECRET", code=2)
    problems = tidings(p, "config", "validate", "--json")
    assert problems.code == 2
    assert problems.json["ok"] is False and len(problems.json["problems"]) == 1

    tidings(p, "secret", "set", "HOOK_SECRET", stdin=whsec() + "\n").ok()
    assert tidings(p, "config", "validate", "--json").ok().json["ok"] is True


def test_config_validate_without_the_key_does_not_check_the_vault(project: Project, tmp_path: Path) -> None:
    vault_config(project, "HOOK_SECRET")
    (project.path / "tidings.key").unlink()
    tidings(project.path, "config", "validate").ok()


def test_config_validate_with_the_key_and_no_database_reports_every_reference(project: Project) -> None:
    vault_config(project, "HOOK_SECRET")
    (project.path / "tidings.db").unlink()
    tidings(project.path, "config", "validate").one_line_error("${vault:HOOK_SECRET} is not stored", code=2)
    assert not (project.path / "tidings.db").exists(), "validating creates no database"
