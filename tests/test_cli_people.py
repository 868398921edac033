"""`tidings init`'s first site admin, `tidings user|project|member|token`, run in this
process (``cli_support.tidings``) on SQLite and PostgreSQL. Every change leaves its audit entry with the CLI as the
actor (auth method ``cli``, the operating-system user's name); a refused change leaves nothing."""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_support import TIDINGS, TOKEN, Ran, cli_env, free_port, start, stop, tidings, wait_until

from tidings.accounts.projects import list_projects
from tidings.accounts.sessions import find_session, start_session
from tidings.accounts.users import check_login, list_users
from tidings.audit import SYSTEM
from tidings.audit.verify import read_entries
from tidings.security.tokens import list_tokens, verify_token
from tidings.store.engine import Store

pytestmark = pytest.mark.skipif(not TIDINGS.exists(), reason=f"{TIDINGS} is not installed")

PASSWORD = re.compile(r"^  (\S{20})$", re.MULTILINE)
"""A generated password as `print_once` shows it (a token has the tdg_ prefix and 47 characters)."""
CLI_ACTOR = f"cli:{getpass.getuser()}"
GOOD = "correct horse battery"


@dataclass
class Site:
    path: Path
    url: str
    admin_password: str = ""
    token: str = ""
    stores: list[Store] = field(default_factory=list)

    def __call__(self, *args: str, stdin: str | None = None) -> Ran:
        return tidings(self.path, *args, stdin=stdin)

    def store(self) -> Store:
        s = Store(self.url)
        self.stores.append(s)
        return s


async def entries(site: Site, after: int = 0) -> list[dict[str, Any]]:
    return await read_entries(site.store(), after)


async def head(site: Site) -> int:
    return len(await entries(site))


async def login(site: Site, email: str, password: str) -> Any:
    async with site.store().write() as conn:
        return await check_login(conn, email, password)


def users(site: Site) -> dict[str, dict[str, Any]]:
    """Through `tidings user list --json`."""
    return {u["email"]: u for u in site("user", "list", "--json").ok().json}


async def stored(site: Site) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """Users, project slugs and tokens as the database holds them (cheaper than three commands)."""
    async with site.store().read() as conn:
        people = [u.public() for u in await list_users(conn)]
        slugs = [p["slug"] for p in await list_projects(conn)]
    return people, slugs, await list_tokens(site.store())


@pytest.fixture
async def site(db_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    """`tidings init` on the test's database: its site admin's password and the first token."""
    s = Site(tmp_path, db_url)
    ran = s("init", "--database", db_url).ok()
    [s.admin_password] = PASSWORD.findall(ran.out)
    [s.token] = TOKEN.findall(ran.out)
    yield s
    for store in s.stores:
        await store.close()


@pytest.fixture
async def bare(db_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    """A configuration and no database yet: an installation from before users existed."""
    (tmp_path / "tidings.yaml").write_text(f"server:\n  database: {db_url}\nintegrations:\n  inbox: {{kind: inbox}}\n")
    s = Site(tmp_path, db_url)
    yield s
    for store in s.stores:
        await store.close()


# -- init -----------------------------------------------------------------------------------------
async def test_init_creates_the_first_site_admin_once_and_the_token_is_theirs(site: Site) -> None:
    admin = users(site)["admin@tidings.local"]
    assert admin["site_admin"] is True and admin["disabled"] is False
    assert await login(site, "admin@tidings.local", site.admin_password) is not None
    [token] = site("token", "list", "--json").ok().json
    assert token["name"] == "admin" and token["user"] == "admin@tidings.local"
    info = await verify_token(site.store(), site.token)
    assert info is not None and info.user_id == admin["id"]
    made = [(e["action"], e["actor"], e["actor_name"], e["auth_method"]) for e in await entries(site)]
    # init's hub is the first to start: it imports the file as the configuration's first revision.
    assert made == [("config.revision", "system", "tidings", "system"),
                    ("user.create", "user", CLI_ACTOR, "cli"), ("token.create", "user", CLI_ACTOR, "cli")]

    before = await head(site)
    again = site("init", "--if-missing").ok()
    assert "nothing to initialise" in again.out
    assert not PASSWORD.search(again.out) and not TOKEN.search(again.out) and "shown once" not in again.out
    assert [u["email"] for u in (await stored(site))[0]] == ["admin@tidings.local"]
    assert await head(site) == before
    assert site("init", "--if-missing", "--json").ok().json["admin"] is None


def test_init_json_and_a_chosen_admin_email(tmp_path: Path) -> None:
    made = tidings(tmp_path, "init", "--admin-email", "Ops@Example.COM", "--json").ok().json
    assert made["admin"]["email"] == "ops@example.com" and len(made["admin"]["password"]) == 20
    assert made["token"].startswith("tdg_")
    listed = tidings(tmp_path, "user", "list", "--json").ok().json
    assert [(u["email"], u["site_admin"]) for u in listed] == [("ops@example.com", True)]


def test_init_refuses_an_invalid_admin_email_before_writing_anything(tmp_path: Path) -> None:
    tidings(tmp_path, "init", "--admin-email", "admin@localhost").one_line_error("not an email address", code=1)
    assert list(tmp_path.iterdir()) == []


# -- tokens made before users: the first site admin adopts them ------------------------------------
async def test_old_tokens_move_to_the_first_site_admin_and_keep_working(
    bare: Site, processes: list[subprocess.Popen[bytes]]
) -> None:
    old = bare("token", "create", "--name", "old").ok().out.strip()
    [listed] = bare("token", "list", "--json").ok().json
    assert listed["user"] is None  # made before there was anyone to own it
    bare("user", "create", "boss@example.com", "--site-admin", "--password-stdin", stdin=GOOD).ok()
    [listed] = bare("token", "list", "--user", "boss@example.com", "--json").ok().json
    assert listed["name"] == "old" and listed["user"] == "boss@example.com"
    info = await verify_token(bare.store(), old)
    [boss] = (await stored(bare))[0]
    assert info is not None and info.user_id == boss["id"]
    [created] = [e for e in await entries(bare) if e["action"] == "user.create"]
    assert created["after"]["adopted_tokens"] == 1 and created["auth_method"] == "cli"

    port = free_port()
    proc = start(processes, bare.path, "serve", "--no-dispatch", log="serve", TIDINGS_PORT=str(port))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        wait_until(lambda: proc.poll() is None and client.get("/healthz").status_code == 200, what="/healthz")
        answer = client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {old}"})
        assert answer.status_code == 200, answer.text
    stop(proc)


def test_init_if_missing_gives_an_old_installation_its_first_admin(bare: Site) -> None:
    bare("token", "create", "--name", "old").ok()
    ran = bare("init", "--if-missing").ok()
    [password] = PASSWORD.findall(ran.out)
    assert "shown once" in ran.out and "admin@tidings.local" in ran.out
    assert bare("token", "list", "--json").ok().json[0]["user"] == "admin@tidings.local"
    again = bare("init", "--if-missing").ok()
    assert "nothing to initialise" in again.out and password not in again.out


# -- users ----------------------------------------------------------------------------------------
async def test_user_create_list_disable_enable_set_password(site: Site) -> None:
    start_at = await head(site)
    made = site("user", "create", "Alice@Example.com", "--name", "Alice", "--json").ok().json
    generated = made["password"]
    assert made["user"]["email"] == "alice@example.com" and made["user"]["site_admin"] is False and len(generated) == 20
    assert await login(site, "alice@example.com", generated) is not None
    human = site("user", "create", "bob@example.com", "--site-admin", "--password-stdin", stdin=GOOD + "\n").ok()
    assert human.out.strip() == "created user bob@example.com (site admin)" and GOOD not in human.out
    bob = await login(site, "bob@example.com", GOOD)
    assert bob is not None and bob.site_admin
    shown = site("user", "create", "carol@example.com").ok().out
    [carol_password] = PASSWORD.findall(shown)
    assert "shown once" in shown and await login(site, "carol@example.com", carol_password) is not None

    assert list(users(site)) == ["admin@tidings.local", "alice@example.com", "bob@example.com", "carol@example.com"]
    table = site("user", "list").ok().out
    assert all(email in table for email in ("alice@example.com", "bob@example.com")) and "Alice" in table
    assert generated not in table

    async with site.store().write() as conn:  # Alice signed in to the UI
        cookie, _ = await start_session(conn, SYSTEM, await check_login(conn, "alice@example.com", generated))
    disabled = site("user", "disable", "alice@example.com", "--json").ok().json
    assert disabled["disabled"] is True and disabled["sessions_ended"] == 1
    async with site.store().write() as conn:
        assert await find_session(conn, cookie) is None
    assert await login(site, "alice@example.com", generated) is None
    assert "ended" in site("user", "disable", "alice@example.com").ok().out
    assert site("user", "enable", "alice@example.com", "--json").ok().json["disabled"] is False
    assert await login(site, "alice@example.com", generated) is not None

    async with site.store().write() as conn:
        cookie, _ = await start_session(conn, SYSTEM, await check_login(conn, "alice@example.com", generated))
    changed = site("user", "set-password", "alice@example.com", "--password-stdin", stdin="a brand new password").ok()
    assert changed.out.strip() == "set the password of alice@example.com: 1 session(s) ended"
    assert await login(site, "alice@example.com", generated) is None
    assert await login(site, "alice@example.com", "a brand new password") is not None
    async with site.store().write() as conn:
        assert await find_session(conn, cookie) is None
    fresh = site("user", "set-password", "alice@example.com", "--json").ok().json
    assert fresh["sessions_ended"] == 0 and await login(site, "alice@example.com", fresh["password"]) is not None

    trail = [e for e in await entries(site, start_at) if e["action"] != "auth.login"]  # the test's sign-ins
    assert [(e["action"], e["target"]) for e in trail] == [
        ("user.create", "user/alice@example.com"), ("user.create", "user/bob@example.com"),
        ("user.create", "user/carol@example.com"), ("user.disable", "user/alice@example.com"),
        ("user.disable", "user/alice@example.com"), ("user.enable", "user/alice@example.com"),
        ("user.set_password", "user/alice@example.com"), ("user.set_password", "user/alice@example.com"),
    ]
    assert {(e["actor"], e["actor_name"], e["auth_method"]) for e in trail} == {("user", CLI_ACTOR, "cli")}
    text = json.dumps(trail)
    assert all(p not in text for p in (generated, GOOD, carol_password, "a brand new password", fresh["password"]))


USER_BAD_INPUT = [
    (["user", "create", "ADMIN@tidings.local"], None, ["a user admin@tidings.local exists already"]),
    (["user", "create", "not-an-email"], None, ["not an email address: 'not-an-email'"]),
    (["user", "create", "a@localhost"], None, ["not an email address"]),
    (["user", "create", "a@example.com", "--password-stdin"], "too short", ["at least 12 characters"]),
    (["user", "create", "a@example.com", "--password-stdin"], "", ["no password on stdin"]),
    (["user", "create", "a@example.com", "--password-stdin"], "line one is long\nline two\n", ["one line"]),
    (["user", "create", "a@example.com", "--password-stdin"], "nul\x00inside password", ["control characters"]),
    (["user", "disable", "nobody@example.com"], None, ["no user nobody@example.com"]),
    (["user", "enable", "nobody@example.com"], None, ["no user nobody@example.com"]),
    (["user", "set-password", "nobody@example.com"], None, ["no user nobody@example.com"]),
    (["user", "set-password", "admin@tidings.local", "--password-stdin"], "short", ["at least 12 characters"]),
    (["user", "disable", "admin@tidings.local"], None, ["would leave no enabled site admin"]),
]


async def test_user_bad_input_changes_nothing(site: Site) -> None:
    before, state = await head(site), await stored(site)
    for args, stdin, fragments in USER_BAD_INPUT:
        line = site(*args, stdin=stdin).one_line_error(*fragments, code=1)
        assert "inside password" not in line and "too short" not in line  # a password is never repeated
    assert await head(site) == before and await stored(site) == state
    assert await login(site, "admin@tidings.local", site.admin_password) is not None


async def test_the_last_enabled_site_admin_can_be_disabled_once_there_is_another(site: Site) -> None:
    site("user", "create", "second@example.com", "--site-admin").ok()
    site("user", "disable", "admin@tidings.local").ok()
    site("user", "disable", "second@example.com").one_line_error("would leave no enabled site admin", code=1)
    assert {u["email"]: u["disabled"] for u in (await stored(site))[0]}["second@example.com"] is False


# -- projects and members -------------------------------------------------------------------------
async def test_projects_and_members(site: Site) -> None:
    site("user", "create", "ann@example.com").ok()
    site("user", "create", "ben@example.com").ok()
    start_at = await head(site)
    made = site("project", "create", "ops", "--name", "Ops team", "--json").ok().json
    assert made["slug"] == "ops" and made["name"] == "Ops team"
    assert site("project", "create", "web").ok().out.strip() == "created project web"
    assert [p["slug"] for p in site("project", "list", "--json").ok().json] == ["default", "ops", "web"]
    assert "Ops team" in site("project", "list").ok().out

    added = site("member", "add", "ops", "Ann@Example.com", "--role", "owner", "--json").ok().json
    assert added == {"project": "ops", "user": "ann@example.com", "role": "owner"}
    assert site("member", "add", "ops", "ben@example.com", "--role", "viewer").ok().out.strip() == \
        "ben@example.com is viewer of ops"
    site("member", "add", "ops", "ben@example.com", "--role", "owner").ok()
    listed = site("member", "list", "ops", "--json").ok().json
    assert [(m["email"], m["role"]) for m in listed] == [("ann@example.com", "owner"), ("ben@example.com", "owner")]
    assert "ben@example.com" in site("member", "list", "ops").ok().out
    assert site("member", "remove", "ops", "ann@example.com", "--json").ok().json == {
        "project": "ops", "user": "ann@example.com", "removed": True}
    assert site("member", "list", "web", "--json").ok().json == []

    trail = await entries(site, start_at)
    assert [(e["action"], e["project"], e["target"]) for e in trail] == [
        ("project.create", "ops", "project/ops"), ("project.create", "web", "project/web"),
        ("member.add", "ops", "project/ops/member/ann@example.com"),
        ("member.add", "ops", "project/ops/member/ben@example.com"),
        ("member.update", "ops", "project/ops/member/ben@example.com"),
        ("member.remove", "ops", "project/ops/member/ann@example.com"),
    ]
    assert trail[4]["before"] == {"role": "viewer"} and trail[4]["after"] == {"role": "owner"}
    assert {(e["actor_name"], e["auth_method"]) for e in trail} == {(CLI_ACTOR, "cli")}


MEMBER_BAD_INPUT = [
    (["project", "create", "Ops Team"], ["project slug 'Ops Team'"]),
    (["project", "create", "ops"], ["a project ops exists already"]),
    (["member", "add", "nope", "ann@example.com", "--role", "owner"], ["no project nope"]),
    (["member", "add", "ops", "nobody@example.com", "--role", "owner"], ["no user nobody@example.com"]),
    (["member", "add", "ops", "ann@example.com", "--role", "king"], ["unknown role 'king'"]),
    (["member", "add", "ops", "ann@example.com", "--role", "viewer"], ["would leave project ops without an owner"]),
    (["member", "remove", "ops", "ann@example.com"], ["would leave project ops without an owner"]),
    (["member", "remove", "ops", "ben@example.com"], ["ben@example.com is not a member of ops"]),
    (["member", "remove", "nope", "ann@example.com"], ["no project nope"]),
    (["member", "remove", "ops", "nobody@example.com"], ["no user nobody@example.com"]),
    (["member", "list", "nope"], ["no project nope"]),
]


async def test_project_and_member_bad_input_changes_nothing(site: Site) -> None:
    for setup in (["user", "create", "ann@example.com"], ["user", "create", "ben@example.com"],
                  ["project", "create", "ops"], ["member", "add", "ops", "ann@example.com", "--role", "owner"]):
        site(*setup).ok()
    before = await head(site)
    for args, fragments in MEMBER_BAD_INPUT:
        site(*args).one_line_error(*fragments, code=1)
    ran = site("member", "add", "ops", "ann@example.com")  # --role is required: a usage error, as click makes it
    assert ran.code == 2 and "Missing option '--role'" in ran.err
    assert await head(site) == before
    assert [(m["email"], m["role"]) for m in site("member", "list", "ops", "--json").ok().json] == [
        ("ann@example.com", "owner")]


# -- NUL and other control characters in names ---------------------------------------------------------
LAUNCH = "import json, sys; sys.argv = ['tidings', *json.loads(sys.argv[1])]; from tidings.cli import main; main()"


def with_argv(site: Site, *args: str) -> Ran:
    """The real command with arguments that an exec'd argv can't carry (NUL): passed as JSON to a
    Python that sets sys.argv and runs tidings' entry point."""
    proc = subprocess.run([sys.executable, "-c", LAUNCH, json.dumps(args)], cwd=site.path, env=cli_env(site.path),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return Ran(args, proc.returncode, proc.stdout, proc.stderr)


CONTROL_CHARACTERS = [
    ["user", "create", "nul\x00@example.com"],
    ["user", "create", "ann@example.com", "--name", "Ann\x00"],
    ["user", "create", "ann@example.com", "--name", "Ann\nAdmin"],
    ["user", "disable", "admin@tidings.local\x00"],
    ["project", "create", "ops\x00"],
    ["project", "create", "ops\n"],
    ["project", "create", "ops", "--name", "O\x00ps"],
    ["member", "add", "default\x00", "admin@tidings.local", "--role", "owner"],
    ["member", "list", "default\x00"],
    ["token", "create", "--name", "ci\x00"],
    ["token", "create", "--name", "ci", "--user", "admin@tidings.local\x00"],
    ["token", "revoke", "admin\x00"],
]


async def test_control_characters_in_names_are_refused(site: Site) -> None:
    before = await head(site)
    # the first through the entry point in its own process, the rest through typer's runner
    # (which passes the arguments as they are, NUL included)
    with_argv(site, *CONTROL_CHARACTERS[0]).one_line_error("must not contain control characters", code=1)
    for args in CONTROL_CHARACTERS[1:]:
        site(*args).one_line_error("must not contain control characters", code=1)
    assert await head(site) == before
    people, slugs, tokens = await stored(site)
    assert [u["email"] for u in people] == ["admin@tidings.local"] and slugs == ["default"] and len(tokens) == 1


# -- tokens ---------------------------------------------------------------------------------------
async def test_token_create_for_a_user_and_project_with_an_expiry(site: Site) -> None:
    site("user", "create", "ci@example.com").ok()
    site("project", "create", "ops").ok()
    start_at = await head(site)
    made = site("token", "create", "--name", "deploy", "--user", "CI@example.com", "--project", "ops",
                "--expires", "90d", "--json").ok().json
    assert made["user"] == "ci@example.com" and made["project"] == "ops" and made["name"] == "deploy"
    assert made["expires_at"] == pytest.approx(time.time() + 90 * 86400, abs=60)
    info = await verify_token(site.store(), made["token"])
    assert info is not None and info.id == made["id"] and info.project == "ops"
    assert info.user_id == {u["email"]: u["id"] for u in (await stored(site))[0]}["ci@example.com"]
    assert await verify_token(site.store(), made["token"], now=time.time() + 91 * 86400) is None  # expired then

    mine = site("token", "list", "--user", "ci@example.com", "--json").ok().json
    assert [(t["name"], t["user"], t["project"]) for t in mine] == [("deploy", "ci@example.com", "ops")]
    assert made["token"] not in site("token", "list").ok().out
    assert len(site("token", "list", "--json").ok().json) == 2
    site("token", "revoke", made["id"]).ok()
    assert await verify_token(site.store(), made["token"]) is None

    trail = await entries(site, start_at)
    assert [e["action"] for e in trail] == ["token.create", "token.revoke"]
    assert trail[0]["after"]["user"] == "ci@example.com" and trail[0]["project"] == "ops"
    assert {(e["actor_name"], e["auth_method"]) for e in trail} == {(CLI_ACTOR, "cli")}
    assert made["token"] not in json.dumps(trail)


TOKEN_BAD_INPUT = [
    (["--user", "nobody@example.com"], "no user 'nobody@example.com'"),
    (["--project", "nope"], "no project 'nope'"),
    (["--expires", "soon"], "invalid duration 'soon'"),
    (["--expires", "-1d"], "invalid duration '-1d'"),
    (["--expires", "0s"], "give a positive duration"),
    (["--expires", "inf"], "must be finite"),
]


async def test_token_bad_input_changes_nothing(site: Site) -> None:
    before = await head(site)
    for args, fragment in TOKEN_BAD_INPUT:
        site("token", "create", "--name", "x", *args).one_line_error(fragment, code=1)
    site("token", "list", "--user", "nobody@example.com").one_line_error("no user nobody@example.com", code=1)
    assert await head(site) == before and len((await stored(site))[2]) == 1

