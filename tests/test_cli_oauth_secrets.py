"""The CLI and a connection's secrets (``oauth/NAME/access``): `config validate` does not call a
connection not made yet an error, `integrations` starts without it, `secret list` shows the
connection's token as referenced by its integration, and `secret delete` refuses it while in use."""

from __future__ import annotations

from typing import Any

import yaml
from cli_support import Project, on_store, tidings

from tidings.oauth import connections
from tidings.oauth.connections import TokenSet
from tidings.security.vault import Vault, load_keys


def with_connected_slack(project: Project) -> None:
    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    config["integrations"]["chat"] = {"kind": "slack", "oauth": True, "channel": "#alerts"}
    (project.path / "tidings.yaml").write_text(yaml.safe_dump(config))


def connect(project: Project, integration: str, token: str) -> None:
    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    db_url = config["server"]["database"]
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        db_url = f"sqlite:///{project.path / db_url.removeprefix('sqlite:///')}"

    async def store(s: Any) -> None:
        vault = Vault(s, load_keys(project.path))
        async with vault.transaction() as conn:
            await connections.store_tokens(vault, conn, integration=integration, project="default", provider="slack",
                                           tokens=TokenSet(token))

    on_store(db_url, store)


def test_a_connection_not_made_is_no_config_error_and_its_secret_is_kept_while_used(project: Project) -> None:
    p = project.path
    with_connected_slack(project)
    assert tidings(p, "config", "validate", "--json").ok().json["ok"] is True
    names = [i["name"] for i in tidings(p, "integrations", "--json").ok().json]
    assert "chat" in names, "the hub starts with an integration whose connection is not made yet"

    connect(project, "chat", "xoxe.xoxb-1-connected-token")
    listed = {s["name"]: s for s in tidings(p, "secret", "list", "--json").ok().json}
    assert listed["oauth/chat/access"]["references"] == ["chat"]
    assert "xoxe.xoxb-1-connected-token" not in tidings(p, "secret", "list").ok().out
    tidings(p, "secret", "delete", "oauth/chat/access").one_line_error("referenced by chat", "disconnect", code=1)
    assert "oauth/chat/access" in {s["name"] for s in tidings(p, "secret", "list", "--json").ok().json}
    assert tidings(p, "config", "validate", "--json").ok().json["ok"] is True

