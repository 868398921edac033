"""Recipients and groups of a project as rows: create, change, delete, read; each change audited
in its transaction. Preferences are in :mod:`.prefs`.

A recipient's Microsoft Teams workflow URL is a credential: it is stored in the vault as
``recipient/<project>/<name>/teams`` and the row holds the ``${vault:...}`` reference; answers and
audit entries only say ``teams: true/false``. Names are handles (``@name`` in a route's ``to``):
a recipient and a group of a project never share one. A recipient's name can't change (routes
name it); its ``version`` grows with every change (``If-Match``)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import delete, select, update

from ..audit import Actor, append
from ..config.people import QuietHours, check_timezone
from ..errors import TidingsError
from ..integrations.base import is_vault_ref
from ..integrations.http import check_http_url
from ..message import format_error
from ..store.engine import Conn
from ..store.recipient_tables import recipient_group_members, recipient_groups, recipients
from ..store.tables import memberships, projects, users

if TYPE_CHECKING:
    from ..security.vault import Vault

NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,31}$")
FIELDS = ("display_name", "email", "slack_user", "teams", "timezone", "user", "quiet_hours")
"""What a create or an update may set (``name`` only at creation)."""
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_GROUP = 500


class RecipientError(TidingsError, ValueError):
    """A change that can't be made as asked; ``status`` is the HTTP answer."""

    status = 422


class UnknownRecipient(RecipientError):
    status = 404


class RecipientConflict(RecipientError):
    """The name is taken (by a recipient or a group), or a required topic can't be turned off."""

    status = 409


class StaleRecipient(RecipientError):
    """``If-Match`` named an older version: someone changed the recipient meanwhile."""

    status = 412

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(f"recipient {current['name']} changed meanwhile: it is at version {current['version']}")
        self.current = current


def teams_secret(project: str, name: str) -> str:
    """The vault name of a recipient's Teams workflow URL."""
    return f"recipient/{project}/{name}/teams"


# -- checks ----------------------------------------------------------------------------------------
def check_name(name: Any, what: str = "recipient") -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise RecipientError(f"{what} name {name!r}: lower-case letters, digits, '.', '-' and '_' "
                             "(at most 64, starting with a letter or digit)")
    return name


def check_email(value: str) -> str:
    """A bare address, its domain lower-cased."""
    from ..integrations.email import split_address

    try:
        display, addr = split_address(value)
    except ValueError as exc:
        raise RecipientError(f"email: {exc}") from None
    if display:
        raise RecipientError("email: give the bare address (jane@example.com); the name is display_name")
    user, _, domain = addr.rpartition("@")
    return f"{user}@{domain.lower()}"


def check_teams(value: str) -> str:
    """A Teams workflow URL in plain text (never a vault reference: it's stored in the vault here)."""
    if is_vault_ref(value):
        raise RecipientError("teams: give the workflow URL itself; tidings stores it in the vault")
    try:
        check_http_url(value)
    except ValueError as exc:
        raise RecipientError(f"teams: the workflow URL {exc}") from None  # never echo it: it is the credential
    parts = urlsplit(value)
    if parts.scheme != "https" and (parts.hostname or "") not in _LOOPBACK:
        raise RecipientError("teams: the workflow URL must be https:// (it carries its own credential)")
    if len(value) > 2000:
        raise RecipientError("teams: the workflow URL is longer than 2000 characters")
    return value


def check_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (of :data:`FIELDS`) checked and normalized; ``None`` clears a field (not
    ``display_name`` or ``timezone``)."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise RecipientError(f"unknown field(s): {', '.join(unknown)} (a recipient has {', '.join(FIELDS)})")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            if key in ("display_name", "timezone"):
                raise RecipientError(f"{key} can't be empty")
            out[key] = None
            continue
        if key == "quiet_hours":
            try:
                out[key] = QuietHours.model_validate(value).model_dump(mode="json", exclude_none=True)
            except ValidationError as exc:
                raise RecipientError("; ".join(format_error({**e, "loc": ("quiet_hours", *e["loc"])})
                                               for e in exc.errors())) from None
            continue
        if not isinstance(value, str):
            raise RecipientError(f"{key}: must be text")
        if key != "teams" and _CONTROL.search(value):
            raise RecipientError(f"{key} must not contain control characters")
        value = value.strip() if key != "teams" else value
        if key == "display_name":
            if not value or len(value) > 200:
                raise RecipientError("display_name: 1 to 200 characters")
        elif key == "email":
            value = check_email(value)
        elif key == "slack_user":
            if not SLACK_USER.match(value):
                raise RecipientError(f"slack_user {value!r}: a Slack user id, U… or W… (U024BE7LH)")
        elif key == "teams":
            value = check_teams(value)
        elif key == "timezone":
            try:
                check_timezone(value)
            except ValueError as exc:
                raise RecipientError(f"timezone: {exc}") from None
        elif key == "user" and (not value or len(value) > 320):
            raise RecipientError("user: a tidings user's email or id")
        out[key] = value
    return out


# -- reads -----------------------------------------------------------------------------------------
def view(row: Any, user_email: str | None = None) -> dict[str, Any]:
    """A recipient as answers and audit entries show it: ``teams`` is only whether there is one."""
    r = row._mapping if hasattr(row, "_mapping") else row
    return {
        "id": r["id"], "project": r["project"], "name": r["name"], "display_name": r["display_name"],
        "email": r["email"], "slack_user": r["slack_user"], "teams": r["teams_url"] is not None,
        "timezone": r["timezone"], "user_id": r["user_id"], "user": user_email,
        "quiet_hours": r["quiet_hours"], "version": r["version"],
        "created_at": r["created_at"], "updated_at": r["updated_at"],
    }


_READ = select(recipients, users.c.email.label("user_email")).select_from(
    recipients.outerjoin(users, users.c.id == recipients.c.user_id))


async def list_recipients(conn: Conn, project: str) -> list[dict[str, Any]]:
    rows = await conn.execute(_READ.where(recipients.c.project == project).order_by(recipients.c.name))
    return [view(r, r.user_email) for r in rows]


async def get_recipient(conn: Conn, project: str, name: str) -> dict[str, Any] | None:
    row = (await conn.execute(_READ.where(recipients.c.project == project, recipients.c.name == name))).first()
    return view(row, row.user_email) if row is not None else None


async def require_recipient(conn: Conn, project: str, name: str) -> dict[str, Any]:
    found = await get_recipient(conn, project, name)
    if found is None:
        raise UnknownRecipient(f"no recipient {name!r} in project {project}")
    return found


async def recipient_by_id(conn: Conn, recipient_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(_READ.where(recipients.c.id == recipient_id))).first()
    return view(row, row.user_email) if row is not None else None


# -- writes ----------------------------------------------------------------------------------------
async def _free_name(conn: Conn, project: str, name: str, *, kind: str) -> None:
    """``name`` is neither a recipient nor a group of ``project``."""
    for table, what in ((recipients, "recipient"), (recipient_groups, "group")):
        q = select(table.c.id).where(table.c.project == project, table.c.name == name)
        if (await conn.execute(q)).first() is not None:
            raise RecipientConflict(f"project {project} has a {what} named {name!r} already"
                                    + ("" if what == kind else f": a {kind} and a {what} can't share a name"))


async def _member(conn: Conn, project: str, user: str) -> tuple[str, str]:
    """(id, email) of the user ``user`` names, who must be a member of ``project``."""
    from ..accounts.users import get_user

    found = await get_user(conn, user)
    if found is None:
        raise RecipientError(f"user: no tidings user {user!r}")
    q = select(memberships.c.role).where(memberships.c.project == project, memberships.c.user_id == found.id)
    if (await conn.execute(q)).first() is None:
        raise RecipientError(f"user: {found.email} is not a member of project {project}")
    return found.id, found.email


async def _columns(conn: Conn, project: str, name: str, values: dict[str, Any], actor: Actor,
                   vault: Vault | None) -> tuple[dict[str, Any], str | None]:
    """The row's columns for checked ``values``; storing or removing the Teams URL in the vault.
    Returns the columns and the linked user's email."""
    cols = {k: v for k, v in values.items() if k not in ("teams", "user")}
    email = None
    if "user" in values:
        cols["user_id"], email = (None, None) if values["user"] is None else await _member(conn, project, values["user"])
    if "teams" in values:
        secret = teams_secret(project, name)
        if values["teams"] is None:
            if vault is not None:
                await vault.remove(conn, secret, actor=actor, note={"recipient": name})
            cols["teams_url"] = None
        else:
            if vault is None or not vault.available:
                raise RecipientError("teams: storing a workflow URL needs the vault's secret key "
                                     "(TIDINGS_SECRET_KEY or `tidings init`)")
            await vault.put(conn, secret, values["teams"], actor=actor)
            cols["teams_url"] = f"${{vault:{secret}}}"
    return cols, email


async def create_recipient(conn: Conn, project: str, name: str, values: Mapping[str, Any], *, actor: Actor,
                           vault: Vault | None = None) -> dict[str, Any]:
    """A new recipient of ``project`` (audited ``recipient.create``)."""
    check_name(name)
    checked = check_values(values)
    if (await conn.execute(select(projects.c.slug).where(projects.c.slug == project))).first() is None:
        raise UnknownRecipient(f"no project {project!r}")
    await _free_name(conn, project, name, kind="recipient")
    cols, _ = await _columns(conn, project, name, checked, actor, vault)
    now = time.time()
    row = {"display_name": name, "timezone": "UTC", **cols, "id": str(uuid.uuid4()), "project": project,
           "name": name, "created_at": now, "updated_at": now, "version": 1}
    await conn.execute(recipients.insert().values(**row))
    made = await require_recipient(conn, project, name)
    await append(conn, actor, "recipient.create", target=f"recipient/{project}/{name}", project=project,
                 after=_audited(made))
    return made


async def update_recipient(conn: Conn, project: str, name: str, values: Mapping[str, Any], *, actor: Actor,
                           vault: Vault | None = None, expect_version: int | None = None) -> dict[str, Any]:
    """Set ``values`` (audited ``recipient.update`` with what changed); a change that changes
    nothing keeps the version. ``expect_version`` (If-Match) else :class:`StaleRecipient`."""
    current = await require_recipient(conn, project, name)
    if expect_version is not None and expect_version != current["version"]:
        raise StaleRecipient(current)
    checked = check_values(values)
    if checked.get("user") is not None:
        user_id, _ = await _member(conn, project, checked["user"])
        if user_id == current["user_id"]:
            del checked["user"]
    elif "user" in checked and current["user_id"] is None:
        del checked["user"]
    if checked.get("teams") is None and "teams" in checked and not current["teams"]:
        del checked["teams"]
    checked = {k: v for k, v in checked.items() if k in ("teams", "user") or current.get(k) != v}
    if not checked:
        return current
    cols, _ = await _columns(conn, project, name, checked, actor, vault)
    cols |= {"version": current["version"] + 1, "updated_at": max(time.time(), current["updated_at"])}
    result = await conn.execute(update(recipients).where(
        recipients.c.id == current["id"], recipients.c.version == current["version"]).values(**cols))
    if result.rowcount != 1:
        raise StaleRecipient(await require_recipient(conn, project, name))
    after = await require_recipient(conn, project, name)
    changed = [k for k in _audited(after) if k not in ("version", "updated_at") and _audited(current)[k] != _audited(after)[k]]
    if "teams" in checked and "teams" not in changed:  # a new URL: still `teams: true`, but changed
        changed.append("teams")
    await append(conn, actor, "recipient.update", target=f"recipient/{project}/{name}", project=project,
                 before={k: _audited(current)[k] for k in changed}, after={k: _audited(after)[k] for k in changed})
    return after


async def delete_recipient(conn: Conn, project: str, name: str, *, actor: Actor, vault: Vault | None = None,
                           expect_version: int | None = None) -> dict[str, Any]:
    """Delete a recipient, their preferences and group memberships (and their Teams URL from the
    vault); audited ``recipient.delete``."""
    current = await require_recipient(conn, project, name)
    if expect_version is not None and expect_version != current["version"]:
        raise StaleRecipient(current)
    if current["teams"] and vault is not None:
        await vault.remove(conn, teams_secret(project, name), actor=actor, note={"recipient": name})
    result = await conn.execute(delete(recipients).where(
        recipients.c.id == current["id"], recipients.c.version == current["version"]))
    if result.rowcount != 1:
        raise StaleRecipient(await require_recipient(conn, project, name))
    await append(conn, actor, "recipient.delete", target=f"recipient/{project}/{name}", project=project,
                 before=_audited(current))
    return current


def _audited(recipient: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in recipient.items() if k not in ("id", "project", "created_at", "user_id")}


# -- groups ----------------------------------------------------------------------------------------
async def _group_row(conn: Conn, project: str, name: str) -> Any:
    q = select(recipient_groups).where(recipient_groups.c.project == project, recipient_groups.c.name == name)
    return (await conn.execute(q)).first()


async def _members(conn: Conn, group_id: str) -> list[str]:
    q = (select(recipients.c.name).join(recipient_group_members, recipient_group_members.c.recipient_id == recipients.c.id)
         .where(recipient_group_members.c.group_id == group_id).order_by(recipient_group_members.c.position))
    return [r.name for r in await conn.execute(q)]


def _group_view(row: Any, members: list[str]) -> dict[str, Any]:
    return {"id": row.id, "project": row.project, "name": row.name, "description": row.description,
            "members": members, "created_at": row.created_at, "updated_at": row.updated_at}


async def list_groups(conn: Conn, project: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(recipient_groups).where(recipient_groups.c.project == project)
                               .order_by(recipient_groups.c.name))).all()
    return [_group_view(r, await _members(conn, r.id)) for r in rows]


async def get_group(conn: Conn, project: str, name: str) -> dict[str, Any]:
    row = await _group_row(conn, project, name)
    if row is None:
        raise UnknownRecipient(f"no group {name!r} in project {project}")
    return _group_view(row, await _members(conn, row.id))


def _check_description(description: str | None) -> str | None:
    if description is not None and (len(description) > 500 or "\x00" in description):
        raise RecipientError("description: at most 500 characters, without NUL")
    return description


async def _member_ids(conn: Conn, project: str, names: list[str]) -> list[str]:
    if len(names) > MAX_GROUP:
        raise RecipientError(f"members: at most {MAX_GROUP}")
    if len(set(names)) != len(names):
        raise RecipientError("members: a recipient is named twice")
    found = {r.name: r.id for r in await conn.execute(
        select(recipients.c.name, recipients.c.id).where(recipients.c.project == project, recipients.c.name.in_(names)))}
    missing = [n for n in names if n not in found]
    if missing:
        raise RecipientError(f"members: no recipient {', '.join(map(repr, missing))} in project {project}")
    return [found[n] for n in names]


async def _write_members(conn: Conn, group_id: str, ids: list[str]) -> None:
    await conn.execute(delete(recipient_group_members).where(recipient_group_members.c.group_id == group_id))
    if ids:
        await conn.execute(recipient_group_members.insert(), [
            {"group_id": group_id, "recipient_id": rid, "position": i} for i, rid in enumerate(ids)])


async def create_group(conn: Conn, project: str, name: str, *, members: list[str] | None = None,
                       description: str | None = None, actor: Actor) -> dict[str, Any]:
    """A new group (audited ``recipient_group.create``), with ``members`` (recipient names) in order."""
    check_name(name, "group")
    _check_description(description)
    if (await conn.execute(select(projects.c.slug).where(projects.c.slug == project))).first() is None:
        raise UnknownRecipient(f"no project {project!r}")
    await _free_name(conn, project, name, kind="group")
    ids = await _member_ids(conn, project, list(members or []))
    now = time.time()
    group_id = str(uuid.uuid4())
    await conn.execute(recipient_groups.insert().values(id=group_id, project=project, name=name,
                                                        description=description, created_at=now, updated_at=now))
    await _write_members(conn, group_id, ids)
    made = await get_group(conn, project, name)
    await append(conn, actor, "recipient_group.create", target=f"recipient_group/{project}/{name}", project=project,
                 after={"description": description, "members": made["members"]})
    return made


async def set_group_members(conn: Conn, project: str, name: str, members: list[str], *,
                            actor: Actor) -> dict[str, Any]:
    """Replace the group's members with ``members``, in this order (audited ``recipient_group.members``)."""
    current = await get_group(conn, project, name)
    ids = await _member_ids(conn, project, list(members))
    if current["members"] == list(members):
        return current
    await _write_members(conn, current["id"], ids)
    await conn.execute(update(recipient_groups).where(recipient_groups.c.id == current["id"])
                       .values(updated_at=max(time.time(), current["updated_at"])))
    await append(conn, actor, "recipient_group.members", target=f"recipient_group/{project}/{name}", project=project,
                 before={"members": current["members"]}, after={"members": list(members)})
    return await get_group(conn, project, name)


async def delete_group(conn: Conn, project: str, name: str, *, actor: Actor) -> dict[str, Any]:
    current = await get_group(conn, project, name)
    await conn.execute(delete(recipient_group_members).where(recipient_group_members.c.group_id == current["id"]))
    await conn.execute(delete(recipient_groups).where(recipient_groups.c.id == current["id"]))
    await append(conn, actor, "recipient_group.delete", target=f"recipient_group/{project}/{name}", project=project,
                 before={"description": current["description"], "members": current["members"]})
    return current

