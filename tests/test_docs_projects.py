"""docs/projects.md shows the roles as accounts/roles.py defines them: its table is this module's
rendering of ROLES, so the page can't drift from the code."""

from __future__ import annotations

from pathlib import Path

from tidings.accounts import PERMISSIONS, ROLES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "projects.md"
BEGIN, END = "<!-- roles: generated from accounts/roles.py -->", "<!-- /roles -->"


def roles_table() -> str:
    """Permissions as rows, roles as columns, in the order roles.py lists them."""
    names = list(ROLES)
    lines = [f"| permission | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    lines += [f"| `{p}` | {' | '.join('✓' if p in ROLES[r] else '' for r in names)} |" for p in PERMISSIONS]
    return "\n".join(lines)


def test_the_roles_table_in_the_docs_is_the_one_the_code_defines() -> None:
    text = PAGE.read_text()
    assert BEGIN in text and END in text, f"docs/projects.md needs the markers {BEGIN} ... {END}"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == roles_table(), "docs/projects.md's roles table differs from ROLES; paste:\n" + roles_table()


def test_the_pages_example_configuration_is_valid() -> None:
    import yaml

    from tidings.config import parse_config

    example = PAGE.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(example), env={})
    assert config.project_names() == ["default", "ops"]
    assert {n: s.project for n, s in config.integrations.items()} == {
        "inbox": "default", "ops-slack": "ops", "ops-github": "ops"}
