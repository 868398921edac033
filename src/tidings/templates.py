"""Templates: a route or an integration can rewrite a message's title, body and fields with
Jinja2, in a sandbox (a template can read the message, not reach into Python).

    template:
      title: "[{{ labels.env | upper }}] {{ title }}"
      body: "{{ body }}\\n\\nRunbook: https://runbooks.example.com/{{ labels.alertname }}"
      fields: {Host: "{{ labels.host }}", Seen: "{{ fields.count | default('1') }}"}

Templates see ``title``, ``body``, ``priority``, ``format``, ``labels``, ``fields`` (a dict),
``links`` and ``thread_key``. A template that fails to render is a permanent error of that delivery
(the message is kept; fix the template and retry it).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .message import Message

_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=Undefined, keep_trailing_newline=False)


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str | None = None
    body: str | None = None
    fields: dict[str, str] | None = Field(None, description="replaces the message's fields, in this order")

    @field_validator("title", "body")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            _compile(v)
        return v

    @field_validator("fields")
    @classmethod
    def _fields_compile(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for source in (v or {}).values():
            _compile(source)
        return v

    def apply(self, message: Message) -> Message:
        """The message rewritten by this template. Raises :class:`TemplateError`."""
        context = _context(message)
        changes: dict[str, Any] = {}
        try:
            if self.title is not None:
                changes["title"] = _compile(self.title).render(context).strip() or message.title
            if self.body is not None:
                changes["body"] = _compile(self.body).render(context)
            if self.fields is not None:
                changes["fields"] = [(name, _compile(src).render(context)) for name, src in self.fields.items()]
        except Exception as exc:  # the sandbox raises SecurityError, undefined filters TypeError...
            raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None
        if not changes:
            return message
        return Message.from_dict({**message.to_dict(), **changes})


class TemplateError(ValueError):
    pass


def check_template(source: str) -> str:
    """``source`` if it compiles; a ValueError naming the line otherwise (for config validation)."""
    _compile(source)
    return source


def render_text(source: str, context: dict[str, Any]) -> str:
    """Render one template string in the sandbox. Raises :class:`TemplateError`."""
    try:
        return str(_compile(source).render(context))
    except Exception as exc:
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None


def apply_templates(message: Message, *templates: Template | None) -> Message:
    for template in templates:
        if template is not None:
            message = template.apply(message)
    return message


@cache
def _compile(source: str) -> Any:
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


def _context(message: Message) -> dict[str, Any]:
    return {
        "title": message.title,
        "body": message.body,
        "priority": message.priority.value,
        "format": message.format.value,
        "labels": dict(message.labels),
        "fields": message.field_map(),
        "links": [{"label": link.label, "url": link.url} for link in message.links],
        "thread_key": message.thread_key,
    }


__all__ = ["Template", "TemplateError", "apply_templates", "check_template", "render_text"]
