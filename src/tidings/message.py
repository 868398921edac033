"""The domain: what a notification is, independent of any channel."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic import Field as PydField

from .errors import MessageError

TITLE_MAX = 500
BODY_MAX = 100_000
FIELDS_MAX = 50
FIELD_NAME_MAX = 200
FIELD_VALUE_MAX = 4_000
LINKS_MAX = 20
LABELS_MAX = 50
LABEL_VALUE_MAX = 500
KEY_MAX = 500

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
_URL = re.compile(r"^(https?://[^\s/?#]+\S*|mailto:\S+)$", re.IGNORECASE)


class Priority(str, enum.Enum):
    """How urgent a message is. ``rank`` orders them: critical is 0 and is delivered first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _BY_RANK[rank]

    def __str__(self) -> str:
        return self.value


_RANKS = {p: i for i, p in enumerate(Priority)}
_BY_RANK = {i: p for p, i in _RANKS.items()}


class Format(str, enum.Enum):
    """How ``body`` is written. Channels convert it to what they can show."""

    PLAIN = "plain"
    MARKDOWN = "markdown"
    HTML = "html"

    def __str__(self) -> str:
        return self.value


def _check_url(v: str) -> str:
    if not _URL.match(v):
        raise ValueError("must be an http(s) or mailto URL")
    return v


class Field(NamedTuple):
    """One row of the table every channel shows beneath the body."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=FIELD_NAME_MAX)]
    value: Annotated[str, StringConstraints(max_length=FIELD_VALUE_MAX)]


class Link(NamedTuple):
    label: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    url: Annotated[str, StringConstraints(max_length=2_000), AfterValidator(_check_url)]


class Message(BaseModel):
    """A notification. Build it with keywords; invalid input raises :class:`MessageError`.

    ``fields`` keep their order and accept a mapping or a list of :class:`Field`.
    ``labels`` drive routing (``source``, ``event_type``, ``service``...).
    Messages sharing a ``thread_key`` form a thread where the channel can;
    messages sharing a ``dedup_key`` are suppressed inside a route's cooldown.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    title: str = PydField(max_length=TITLE_MAX)
    body: str = PydField(default="", max_length=BODY_MAX)
    priority: Priority = Priority.MEDIUM
    format: Format = Format.PLAIN
    fields: tuple[Field, ...] = PydField(default=(), max_length=FIELDS_MAX)
    links: tuple[Link, ...] = PydField(default=(), max_length=LINKS_MAX)
    labels: dict[str, str] = PydField(default_factory=dict)
    thread_key: str | None = PydField(default=None, max_length=KEY_MAX)
    dedup_key: str | None = PydField(default=None, max_length=KEY_MAX)
    resolves: bool = False
    """True when this message closes its thread (a resolved alert): channels that can update the
    thread's first message in place do so."""

    def __init__(self, title: str | None = None, body: str = "", /, **data: Any) -> None:
        if title is not None:
            data["title"] = title
        if body:
            data["body"] = body
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise MessageError(describe(exc), [format_error(e) for e in exc.errors()]) from None

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: Any) -> Any:
        if isinstance(v, str) and not isinstance(v, Priority):
            try:
                return Priority(v.strip().lower())
            except ValueError:
                raise ValueError(
                    f"unknown priority {v!r}; use one of {', '.join(p.value for p in Priority)}"
                ) from None
        return v

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> Any:
        if isinstance(v, str) and not isinstance(v, Format):
            try:
                return Format(v.strip().lower())
            except ValueError:
                raise ValueError(
                    f"unknown format {v!r}; use one of {', '.join(f.value for f in Format)}"
                ) from None
        return v

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return [(str(k), _text(val)) for k, val in v.items()]
        if isinstance(v, (list, tuple)):
            return [(str(x[0]), _text(x[1])) if isinstance(x, (list, tuple)) and len(x) == 2 else x for x in v]
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            return v
        if len(v) > LABELS_MAX:
            raise ValueError(f"at most {LABELS_MAX} labels")
        out: dict[str, str] = {}
        for k, val in v.items():
            if not isinstance(k, str) or not _LABEL_NAME.match(k):
                raise ValueError(f"label name {k!r} must match {_LABEL_NAME.pattern}")
            text = _text(val)
            if len(text) > LABEL_VALUE_MAX:
                raise ValueError(f"label {k!r} is longer than {LABEL_VALUE_MAX} characters")
            out[k] = text
        return out

    @model_validator(mode="after")
    def _keys(self) -> Message:
        for name in ("thread_key", "dedup_key"):
            v = getattr(self, name)
            if v is not None and not v.strip():
                raise ValueError(f"{name} must not be blank")
        return self

    @model_validator(mode="after")
    def _no_nul(self) -> Message:
        # PostgreSQL text can't hold U+0000: refuse it here, the same way on every database.
        texts = [("title", self.title), ("body", self.body), ("thread_key", self.thread_key or ""),
                 ("dedup_key", self.dedup_key or "")]
        texts += [(f"labels.{k}", v) for k, v in self.labels.items()]
        texts += [(f"fields[{i}]", f.name + f.value) for i, f in enumerate(self.fields)]
        texts += [(f"links[{i}]", link.label + link.url) for i, link in enumerate(self.links)]
        for path, text in texts:
            if "\x00" in text:
                raise ValueError(f"{path}: must not contain NUL characters")
        return self

    @property
    def source(self) -> str | None:
        return self.labels.get("source")

    def field_map(self) -> dict[str, str]:
        return {f.name: f.value for f in self.fields}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``Message.from_dict`` reads it back. Built once per message and
        shared: copy it before changing it."""
        # Kept in the instance's __dict__ under ``_dict``, as functools.cached_property kept it,
        # without its lock: each stored message builds it once, on the hot path.
        built = self.__dict__.get("_dict")
        if built is None:
            built = self.__dict__["_dict"] = self._build_dict()
        return built

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Message:
        """A copy (with ``update``) that builds its own :meth:`to_dict`: the cached one is this message's."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_dict", None)
        return copied

    def _build_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "body": self.body,
            "priority": self.priority._value_,  # the enum's ``value`` property costs more than the field
            "format": self.format._value_,
            "fields": [[f.name, f.value] for f in self.fields],
            "links": [{"label": link.label, "url": link.url} for link in self.links],
            "labels": dict(self.labels),
            "thread_key": self.thread_key,
            "dedup_key": self.dedup_key,
            "resolves": self.resolves,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        return cls(**dict(data))

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Message:
        """Rebuild a message written by :meth:`to_dict` and validated then, without validating again."""
        return cls.model_construct(
            title=data["title"],
            body=data["body"],
            priority=Priority(data["priority"]),
            format=Format(data["format"]),
            fields=tuple(Field(n, v) for n, v in data["fields"]),
            links=tuple(Link(x["label"], x["url"]) for x in data["links"]),
            labels=dict(data["labels"]),
            thread_key=data.get("thread_key"),
            dedup_key=data.get("dedup_key"),
            resolves=bool(data.get("resolves", False)),
        )


def _text(v: Any) -> str:
    """A label or field value as text. Scalars only: a nested object would be stored as its
    Python repr, which no channel should show."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    if isinstance(v, (int, float)):
        return str(v)
    raise ValueError(f"values must be text, numbers or booleans, not {type(v).__name__}")


def describe(exc: ValidationError) -> str:
    """One line per problem, each with its path: ``fields[3].value: too long``."""
    return "; ".join(format_error(e) for e in exc.errors())


def format_error(err: Mapping[str, Any]) -> str:
    path = ""
    for part in err.get("loc", ()):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return f"{path}: {msg}" if path else msg
