"""Recipients, groups and preferences as rows (SQLite and PostgreSQL): the rules each change keeps,
its audit entry in the same transaction, the Teams URL kept in the vault and never shown."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from tidings.accounts.projects import create_project, set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM, Actor
from tidings.audit.verify import read_entries
from tidings.config.people import ProjectSettings
from tidings.recipients.model import load_people
from tidings.recipients.prefs import list_preferences, set_preference, unset_preference
from tidings.recipients.store import (
    RecipientConflict,
    RecipientError,
    StaleRecipient,
    UnknownRecipient,
    create_group,
    create_recipient,
    delete_group,
    delete_recipient,
    get_group,
    list_recipients,
    set_group_members,
    update_recipient,
)
from tidings.security.vault import Vault
from tidings.store.engine import Store
from tidings.store.recipient_tables import preferences, recipient_group_members, recipients

ALICE = Actor("user", name="alice@example.com", auth_method="token")
TEAMS = "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t-sig-value"
SETTINGS = ProjectSettings.model_validate({"topics": {"security": {"required": True}, "deploys": {}}})


@pytest.fixture
async def ready(store: Store) -> Vault:
    async with store.write() as conn:
        for slug in ("alpha", "beta"):
            await create_project(conn, SYSTEM, slug)
        await create_user(conn, SYSTEM, email="ann@example.com")
        await create_user(conn, SYSTEM, email="bob@example.com")
        await set_member(conn, SYSTEM, "alpha", "ann@example.com", "member")
        await set_member(conn, SYSTEM, "beta", "bob@example.com", "member")
    return Vault(store, [Fernet.generate_key().decode()])


async def entries(store: Store, prefix: str) -> list[dict[str, Any]]:
    return [e for e in await read_entries(store) if e["action"].startswith(prefix)]


async def test_a_recipient_made_changed_and_deleted_each_audited(store: Store, ready: Vault) -> None:
    vault = ready
    async with vault.transaction() as conn:
        made = await create_recipient(conn, "alpha", "ann", {
            "display_name": "Ann Lee", "email": "Ann.Lee@Example.COM", "slack_user": "U024BE7LH", "teams": TEAMS,
            "timezone": "Europe/Berlin", "user": "ANN@example.com",
            "quiet_hours": {"windows": [{"days": "mon-fri", "start": "19:00", "end": "08:00"}]},
        }, actor=ALICE, vault=vault)
    assert (made["email"], made["teams"], made["user"], made["version"]) == ("Ann.Lee@example.com", True,
                                                                            "ann@example.com", 1)
    assert made["quiet_hours"]["windows"] == [{"days": "mon-fri", "start": "19:00", "end": "08:00"}]
    # The row holds the vault reference; the vault holds the URL; no answer or audit entry shows it.
    async with store.read() as conn:
        row = (await conn.execute(select(recipients).where(recipients.c.name == "ann"))).one()
    assert row.teams_url == "${vault:recipient/alpha/ann/teams}"
    assert await vault.get("recipient/alpha/ann/teams") == TEAMS
    trail = await read_entries(store)
    assert TEAMS not in str(trail) and "s3cr3t" not in str(made)
    [create] = await entries(store, "recipient.")
    assert (create["target"], create["project"], create["actor_name"]) == ("recipient/alpha/ann", "alpha", ALICE.name)
    assert create["after"]["teams"] is True and create["after"]["email"] == "Ann.Lee@example.com"
    # The directory's loader reads it as a Person.
    async with store.read() as conn:
        people = await load_people(conn, "alpha")
    assert people.persons["ann"].quiet_hours is not None and people.persons["ann"].slack_user == "U024BE7LH"

    async with store.write() as conn:
        changed = await update_recipient(conn, "alpha", "ann", {"timezone": "America/New_York", "slack_user": None},
                                         actor=ALICE, vault=vault, expect_version=1)
        same = await update_recipient(conn, "alpha", "ann", {"timezone": "America/New_York"}, actor=ALICE)
    assert (changed["version"], changed["timezone"], changed["slack_user"]) == (2, "America/New_York", None)
    assert same["version"] == 2  # nothing changed: the same version, no entry
    [_, upd] = await entries(store, "recipient.")
    assert upd["action"] == "recipient.update"
    assert upd["before"] == {"slack_user": "U024BE7LH", "timezone": "Europe/Berlin"}
    assert upd["after"] == {"slack_user": None, "timezone": "America/New_York"}
    with pytest.raises(StaleRecipient) as stale:
        async with store.write() as conn:
            await update_recipient(conn, "alpha", "ann", {"display_name": "late"}, actor=ALICE, expect_version=1)
    assert stale.value.current["version"] == 2

    async with store.write() as conn:
        await create_group(conn, "alpha", "oncall", members=["ann"], actor=ALICE)
        await set_preference(conn, changed, "deploys", "", False, actor=ALICE, settings=SETTINGS)
    async with vault.transaction() as conn:
        gone = await delete_recipient(conn, "alpha", "ann", actor=ALICE, vault=vault, expect_version=2)
    assert gone["name"] == "ann"
    async with store.read() as conn:
        assert (await conn.execute(select(preferences))).all() == []
        assert (await conn.execute(select(recipient_group_members))).all() == []
        assert (await get_group(conn, "alpha", "oncall"))["members"] == []
    assert "recipient/alpha/ann/teams" not in await vault.names()
    assert [e["action"] for e in await read_entries(store) if e["target"] and "ann" in e["target"]][-2:] == [
        "secret.delete", "recipient.delete"]


@pytest.mark.parametrize(("values", "fragment"), [
    ({"email": "not-an-address"}, "email"),
    ({"email": "Ann <ann@example.com>"}, "bare address"),
    ({"slack_user": "ann"}, "Slack user id"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"teams": "ftp://example.com/x"}, "http"),
    ({"teams": "http://example.com/hook"}, "https"),
    ({"teams": "${vault:other}"}, "the workflow URL itself"),
    ({"quiet_hours": {"windows": [{"start": "25:00"}]}}, "quiet_hours"),
    ({"quiet_hours": {"windows": []}}, "quiet_hours"),
    ({"user": "bob@example.com"}, "not a member of project alpha"),
    ({"user": "nobody@example.com"}, "no tidings user"),
    ({"display_name": "a\x00b"}, "control"),
    ({"colour": "red"}, "unknown field"),
])
async def test_bad_values_are_refused_with_the_reason(store: Store, ready: Vault, values: dict[str, Any],
                                                      fragment: str) -> None:
    with pytest.raises(RecipientError, match=fragment):
        async with ready.transaction() as conn:
            await create_recipient(conn, "alpha", "ann", values, actor=ALICE, vault=ready)
    async with store.read() as conn:
        assert await list_recipients(conn, "alpha") == []
    assert await entries(store, "recipient.") == []


async def test_names_recipients_and_groups_share_and_projects_keep_apart(store: Store, ready: Vault) -> None:
    async with store.write() as conn:
        await create_recipient(conn, "alpha", "ann", {}, actor=ALICE)
        await create_recipient(conn, "beta", "ann", {}, actor=ALICE)  # another project: its own names
        for bad in ("Ann", "-x", "a b", "", "x" * 65):
            with pytest.raises(RecipientError, match="name"):
                await create_recipient(conn, "alpha", bad, {}, actor=ALICE)
    with pytest.raises(RecipientConflict, match="recipient named 'ann' already"):
        async with store.write() as conn:
            await create_recipient(conn, "alpha", "ann", {}, actor=ALICE)
    with pytest.raises(RecipientConflict, match="a group and a recipient can't share"):
        async with store.write() as conn:
            await create_group(conn, "alpha", "ann", actor=ALICE)
    async with store.write() as conn:
        await create_recipient(conn, "alpha", "bea", {}, actor=ALICE)
        group = await create_group(conn, "alpha", "oncall", members=["bea", "ann"], description="nights", actor=ALICE)
    assert group["members"] == ["bea", "ann"]
    with pytest.raises(RecipientConflict, match="a recipient and a group can't share"):
        async with store.write() as conn:
            await create_recipient(conn, "alpha", "oncall", {}, actor=ALICE)
    with pytest.raises(RecipientError, match="no recipient 'zed'"):
        async with store.write() as conn:
            await set_group_members(conn, "alpha", "oncall", ["ann", "zed"], actor=ALICE)
    with pytest.raises(RecipientError, match="twice"):
        async with store.write() as conn:
            await set_group_members(conn, "alpha", "oncall", ["ann", "ann"], actor=ALICE)
    with pytest.raises(UnknownRecipient):
        async with store.write() as conn:
            await set_group_members(conn, "beta", "oncall", ["ann"], actor=ALICE)  # alpha's group, not beta's
    async with store.write() as conn:
        moved = await set_group_members(conn, "alpha", "oncall", ["ann", "bea"], actor=ALICE)
        await set_group_members(conn, "alpha", "oncall", ["ann", "bea"], actor=ALICE)  # the same: no entry
    assert moved["members"] == ["ann", "bea"]
    async with store.read() as conn:
        assert (await load_people(conn, "alpha")).groups == {"oncall": ("ann", "bea")}
    async with store.write() as conn:
        await delete_group(conn, "alpha", "oncall", actor=ALICE)
    assert [(e["action"], e["before"], e["after"]) for e in await entries(store, "recipient_group.")] == [
        ("recipient_group.create", None, {"description": "nights", "members": ["bea", "ann"]}),
        ("recipient_group.members", {"members": ["bea", "ann"]}, {"members": ["ann", "bea"]}),
        ("recipient_group.delete", {"description": "nights", "members": ["ann", "bea"]}, None),
    ]


async def test_preferences_set_unset_and_required_topics(store: Store, ready: Vault) -> None:
    async with store.write() as conn:
        ann = await create_recipient(conn, "alpha", "ann", {}, actor=ALICE)
        first = await set_preference(conn, ann, "deploys", "email", False, actor=ALICE, settings=SETTINGS)
        again = await set_preference(conn, ann, "deploys", "email", False, actor=ALICE, settings=SETTINGS)
        await set_preference(conn, ann, "", "", False, actor=ALICE, settings=SETTINGS)  # global off is allowed
        await set_preference(conn, ann, "security", "email", True, actor=ALICE, settings=SETTINGS)  # on is fine
    assert first["changed"] and not again["changed"]
    with pytest.raises(RecipientConflict, match="'security' is required"):
        async with store.write() as conn:
            await set_preference(conn, ann, "security", "", False, actor=ALICE, settings=SETTINGS)
    for topic, channel in (("Deploys", ""), ("", "no such!"), ("a\x00", "")):
        with pytest.raises(RecipientError):
            async with store.write() as conn:
                await set_preference(conn, ann, topic, channel, False, actor=ALICE, settings=SETTINGS)
    async with store.write() as conn:
        assert await unset_preference(conn, ann, "", "", actor=ALICE)
        assert not await unset_preference(conn, ann, "", "", actor=ALICE)
        rows = await list_preferences(conn, ann["id"])
    assert [(p["topic"], p["channel"], p["enabled"], p["updated_by"]) for p in rows] == [
        ("deploys", "email", False, ALICE.name), ("security", "email", True, ALICE.name)]
    assert [(e["action"], e["target"], e["before"], e["after"]) for e in await entries(store, "preference.")] == [
        ("preference.set", "recipient/alpha/ann/preference/deploys/email", None, {"enabled": False}),
        ("preference.set", "recipient/alpha/ann/preference/*/*", None, {"enabled": False}),
        ("preference.set", "recipient/alpha/ann/preference/security/email", None, {"enabled": True}),
        ("preference.unset", "recipient/alpha/ann/preference/*/*", {"enabled": False}, None),
    ]
    async with store.read() as conn:
        assert (await load_people(conn, "alpha")).persons["ann"].prefs == {("deploys", "email"): False,
                                                                          ("security", "email"): True}


async def test_a_failed_change_leaves_neither_row_nor_entry(store: Store, ready: Vault) -> None:
    """The audit entry and the change commit together: a change refused midway leaves neither."""
    async with store.write() as conn:
        await create_recipient(conn, "alpha", "ann", {}, actor=ALICE)
    before = len(await read_entries(store))
    with pytest.raises(RecipientError):
        async with store.write() as conn:
            await create_recipient(conn, "alpha", "bea", {}, actor=ALICE)
            await create_group(conn, "alpha", "grp", members=["bea", "nobody"], actor=ALICE)
    async with store.read() as conn:
        assert [r["name"] for r in await list_recipients(conn, "alpha")] == ["ann"]
    assert len(await read_entries(store)) == before
