"""The JQL the Jira stand-in understands (tests/peers/jira_api.py): enough of Jira's grammar for
what tidings sends and for the filters people write in a mapping.

    query   := [expr] [ORDER BY field [ASC|DESC] {, field [ASC|DESC]}]
    expr    := term {OR term};  term := factor {AND factor};  factor := NOT factor | ( expr ) | clause
    clause  := field (= | != | > | >= | < | <=) value | field [NOT] IN (value, ...) | field IS [NOT] EMPTY

Fields: project, key, id, summary (``~`` contains), labels, status, statusCategory, issuetype
(type), priority, assignee, created, updated, duedate. Dates as Jira takes them
(``"yyyy/MM/dd HH:mm"``, ``"yyyy-MM-dd HH:mm"``, ``"yyyy/MM/dd"``, ``"yyyy-MM-dd"``) in the API
user's time zone, at minute precision. Anything else is a 400 with Jira's wording.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|(>=|<=|!=|!~|[=<>~(),])|([^\s=<>!~(),"\']+))')
KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
FIELDS = {"project", "key", "issuekey", "id", "summary", "labels", "status", "statuscategory", "issuetype", "type",
          "priority", "assignee", "created", "createddate", "updated", "updateddate", "duedate", "due"}
DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")

Issue = Any
"""Whatever the stand-in keeps per issue; ``value(issue, field)`` reads it."""
Predicate = Callable[[Issue], bool]


class JqlError(ValueError):
    """Jira answers 400 with ``errorMessages: [str(this)]``."""


@dataclass
class Query:
    where: Predicate
    order: list[tuple[str, bool]]  # field, descending
    bounded: bool


@dataclass
class _Tok:
    text: str
    quoted: bool


def parse(jql: str, value: Callable[[Issue, str], Any], zone: datetime.tzinfo) -> Query:
    tokens = _tokens(jql)
    parser = _Parser(tokens, value, zone)
    where: Predicate = lambda issue: True  # noqa: E731
    bounded = False
    if parser.peek() and not parser.at("order"):
        where = parser.expr()
        bounded = True
    order: list[tuple[str, bool]] = []
    if parser.at("order"):
        parser.take()
        parser.expect("by")
        while True:
            field = parser.field()
            descending = False
            if parser.at("asc") or parser.at("desc"):
                descending = parser.take().text.lower() == "desc"
            order.append((field, descending))
            if not parser.at(","):
                break
            parser.take()
    if parser.peek() is not None:
        raise JqlError(f"Error in the JQL Query: Expecting end of query but got '{parser.peek().text}'.")  # type: ignore[union-attr]
    return Query(where, order or [("created", True)], bounded)


def _tokens(jql: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(jql):
        if jql[pos:].strip() == "":
            break
        m = TOKEN.match(jql, pos)
        if m is None or m.end() == pos:
            raise JqlError(f"Error in the JQL Query: The character '{jql[pos:].strip()[:1]}' is a reserved JQL character.")
        quoted = m.group(1) if m.group(1) is not None else m.group(2)
        if quoted is not None:
            out.append(_Tok(re.sub(r"\\(.)", r"\1", quoted), True))
        else:
            out.append(_Tok(m.group(3) or m.group(4), False))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[_Tok], value: Callable[[Issue, str], Any], zone: datetime.tzinfo) -> None:
        self.tokens, self.pos, self.value, self.zone = tokens, 0, value, zone

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def at(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and not tok.quoted and tok.text.lower() == word

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise JqlError("Error in the JQL Query: Expecting more of the query.")
        self.pos += 1
        return tok

    def expect(self, word: str) -> None:
        if not self.at(word):
            got = self.peek()
            raise JqlError(f"Error in the JQL Query: Expecting '{word}' but got '{got.text if got else 'end of query'}'.")
        self.pos += 1

    def field(self) -> str:
        tok = self.take()
        name = tok.text.lower()
        if name not in FIELDS:
            raise JqlError(f"Field '{tok.text}' does not exist or you do not have permission to view it.")
        return {"type": "issuetype", "issuekey": "key", "createddate": "created", "updateddate": "updated",
                "due": "duedate"}.get(name, name)

    def expr(self) -> Predicate:
        parts = [self.term()]
        while self.at("or"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda issue: any(p(issue) for p in parts))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.at("and"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda issue: all(p(issue) for p in parts))

    def factor(self) -> Predicate:
        if self.at("not"):
            self.take()
            inner = self.factor()
            return lambda issue: not inner(issue)
        if self.at("("):
            self.take()
            inner = self.expr()
            self.expect(")")
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        field = self.field()
        if self.at("is"):
            self.take()
            negate = self.at("not")
            if negate:
                self.take()
            if not (self.at("empty") or self.at("null")):
                raise JqlError("Error in the JQL Query: Expecting 'EMPTY' or 'NULL'.")
            self.take()
            return lambda issue: _empty(self.value(issue, field)) != negate
        negate_in = self.at("not")
        if negate_in:
            self.take()
        if self.at("in"):
            self.take()
            self.expect("(")
            wanted = [self.literal(field)]
            while self.at(","):
                self.take()
                wanted.append(self.literal(field))
            self.expect(")")
            return lambda issue: any(_eq(self.value(issue, field), w) for w in wanted) != negate_in
        if negate_in:
            raise JqlError("Error in the JQL Query: Expecting 'IN' after 'NOT'.")
        op = self.take()
        if op.quoted or op.text not in ("=", "!=", ">", ">=", "<", "<=", "~", "!~"):
            raise JqlError(f"Error in the JQL Query: Expecting operator but got '{op.text}'.")
        right = self.literal(field)
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "=": _eq, "!=": lambda a, b: not _eq(a, b),
            "~": lambda a, b: str(b).lower() in str(a or "").lower(),
            "!~": lambda a, b: str(b).lower() not in str(a or "").lower(),
            ">": lambda a, b: a is not None and a > b, ">=": lambda a, b: a is not None and a >= b,
            "<": lambda a, b: a is not None and a < b, "<=": lambda a, b: a is not None and a <= b,
        }
        compare = ops[op.text]
        if op.text in (">", ">=", "<", "<=") and field not in ("created", "updated", "duedate", "id", "key"):
            raise JqlError(f"The operator '{op.text}' is not supported by the '{field}' field.")
        return lambda issue: compare(self.value(issue, field), right)

    def literal(self, field: str) -> Any:
        tok = self.take()
        if not tok.quoted and tok.text.lower() in KEYWORDS - {"empty", "null"}:
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{tok.text}'.")
        if field in ("created", "updated"):
            return _date(tok.text, field, self.zone)
        if field == "id":
            return int(tok.text) if tok.text.isdigit() else tok.text
        return tok.text


def _date(text: str, field: str, zone: datetime.tzinfo) -> float:
    for pattern in DATE_FORMATS:
        try:
            return datetime.datetime.strptime(text, pattern).replace(tzinfo=zone).timestamp()
        except ValueError:
            continue
    raise JqlError(
        f"Date value '{text}' for field '{field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
        "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
    )


def _eq(value: Any, wanted: Any) -> bool:
    if isinstance(value, (list, tuple, set)):
        return any(_eq(v, wanted) for v in value)
    if isinstance(value, str) and isinstance(wanted, str):
        return value.lower() == wanted.lower()
    return bool(value == wanted)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()
