"""What sign-in and the accounts API take and answer, as pydantic models (the OpenAPI document is
built from them). Texts from outside are NUL-free and bounded: PostgreSQL refuses NUL characters
and a too-long value must be a 422, never a 500."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from ..accounts.roles import ROLES
from ..accounts.users import AccountError, normalize_email
from .schemas import _SPACE, DURATION, NO_NUL, Out

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""A project's slug: lower-case letters, digits and '-', at most 64."""
EMAIL = rf"^[^{_SPACE}\x00-\x1f\x7f-\x9f]+@[^{_SPACE}@\x00-\x1f\x7f-\x9f]*\.[^{_SPACE}@\x00-\x1f\x7f-\x9f]*$"
"""What the server takes as an email address: something, an @, and a domain with a dot."""
LOCAL_PATH = r"^/(?:[^/\\\x00-\x1f\x7f][^\x00-\x1f\x7f]*)?$"
"""A path on this server (no scheme, no host, no //host): where a sign-in form may send the browser."""

Role = Literal[tuple(ROLES)]  # type: ignore[valid-type]
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except AccountError as exc:
        raise ValueError(str(exc)) from None


Email = Annotated[str, StringConstraints(pattern=EMAIL, max_length=320), AfterValidator(_email)]
UserRef = Annotated[str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=320)]
"""A user named by email or id."""
Slug = Annotated[str, StringConstraints(pattern=SLUG, max_length=64)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- sign-in ---------------------------------------------------------------------------------------
class LoginIn(_In):
    model_config = ConfigDict(title="LoginIn", extra="forbid", json_schema_extra={
        "examples": [{"email": "alice@example.com", "password": "correct horse battery staple"}]})

    email: Text = Field(min_length=1, max_length=320, description="the account's email (any case)")
    password: Text = Field(min_length=1, max_length=1024)


class LoginForm(LoginIn):
    """The same fields posted by an HTML form, and where to send the browser afterwards."""

    next: str | None = Field(None, max_length=2000, pattern=LOCAL_PATH,
                             description="a path on this server: answer 303 to it instead of 200")


class UserOut(Out):
    id: str
    email: str
    name: str
    disabled: bool
    site_admin: bool = Field(description="manages users and every project")
    created_at: float = Field(description="Unix time, seconds")


class LoginOut(Out):
    user: UserOut
    csrf_token: str = Field(description="send it back as X-CSRF-Token with every unsafe request of this session")
    expires_at: float = Field(description="when the session ends at the latest (Unix time); unused for 12 hours it ends sooner")


class SignedOut(Out):
    signed_out: bool = Field(description="true: the session ended and its cookie is cleared")


class MyProject(Out):
    slug: str
    name: str
    role: Role | None = Field(description="the caller's role in it (null: a site admin who is no member)")


class TokenRef(Out):
    id: str
    name: str
    project: str | None = Field(description="the only project it acts in; null: every project of its user")


class Me(Out):
    user: UserOut | None = Field(description="null for a token made before users existed (it acts as a site admin)")
    auth_method: Literal["session", "token"]
    site_admin: bool
    token: TokenRef | None = Field(description="the token of this request, when a token authenticates it")
    projects: list[MyProject] = Field(description="the projects the caller belongs to, with its role in each")
    csrf_token: str | None = Field(description="the session's CSRF token (null for a token)")


# -- users -----------------------------------------------------------------------------------------
class UserIn(_In):
    model_config = ConfigDict(title="UserIn", extra="forbid", json_schema_extra={
        "examples": [{"email": "bob@example.com", "name": "Bob", "password": "a long passphrase here"}]})

    email: Email = Field(description="unique, case-insensitively")
    name: Text | None = Field(None, min_length=1, max_length=200, description="shown to people; the email's first part by default")
    password: Text | None = Field(None, min_length=12, max_length=1024,
                                  description="the initial password (12 characters or more); none: can't sign in "
                                  "with a password until one is set")
    site_admin: StrictBool = Field(False, description="manages users and every project")


# -- projects and members --------------------------------------------------------------------------
class ProjectIn(_In):
    model_config = ConfigDict(title="ProjectIn", extra="forbid", json_schema_extra={
        "examples": [{"slug": "payments", "name": "Payments", "owner": "alice@example.com"}]})

    slug: Slug = Field(description="lower-case letters, digits and '-', at most 64; in every project URL")
    name: Text | None = Field(None, min_length=1, max_length=200, description="the slug by default")
    owner: UserRef | None = Field(None, description="a user (email or id) to make its first owner")


class ProjectOut(Out):
    slug: str
    name: str
    created_at: float = Field(description="Unix time, seconds")
    role: Role | None = Field(None, description="the caller's role in it (null: a site admin who is no member)")


class MemberIn(_In):
    model_config = ConfigDict(title="MemberIn", extra="forbid", json_schema_extra={"examples": [{"role": "member"}]})

    role: Role = Field(description="owner: everything in the project, members included; member: send, test, "
                       "retry, replay, silence, sync; viewer: read")


class MemberOut(Out):
    email: str
    name: str
    role: Role
    created_at: float = Field(description="when they joined (Unix time)")


class MemberChange(Out):
    project: str
    user: str = Field(description="the member's email")
    role: Role | None = Field(description="the role now; null once removed")


# -- tokens ----------------------------------------------------------------------------------------
class TokenIn(_In):
    model_config = ConfigDict(title="TokenIn", extra="forbid", json_schema_extra={
        "examples": [{"name": "ci", "project": "payments", "expires": "90d"}]})

    name: Text = Field(min_length=1, max_length=100, description="to recognize it by (not unique)")
    project: Slug | None = Field(None, description="act only in this project; a project-scoped token can only "
                                 "make tokens scoped to its own project, the default")
    expires: str | None = Field(None, pattern=DURATION, description="expire after this long: 30d, 12h (at most 3650d); "
                                "none: until revoked")


class TokenOut(Out):
    id: str
    name: str
    user: str | None = Field(description="its user's email (null: made before users existed)")
    project: str | None = Field(description="the only project it acts in; null: every project of its user")
    created_at: float = Field(description="Unix time, seconds")
    expires_at: float | None
    last_used_at: float | None = Field(description="to the minute")
    revoked_at: float | None


class NewToken(TokenOut):
    token: str = Field(description="the token itself: shown this once, stored only as a hash")
