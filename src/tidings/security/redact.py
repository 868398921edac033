"""Secrets never leak: every secret tidings knows is masked as ``…abcd`` wherever text leaves
the process (logs, stored errors, API answers, CLI output).

:func:`register` is the one place that knows which forms of a secret can travel: besides the
value itself, each form tidings derives from it when it sends it (see :func:`forms`), so that a
peer echoing a header, a URL or a body back is masked however the secret was encoded.

Text is masked first and cut afterwards (:func:`clip`): a cut inside a secret would leave most of
it unmasked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit

ERROR_MAX = 2000
"""A stored error (a delivery's or an event's last error, a disabled reason, a refusal's detail)
is masked, then cut to this many characters."""
_MIN_LEN = 6
_known: set[str] = set()
"""Every form registered."""
Level = tuple[frozenset[str], "re.Pattern[str]"]
_levels: tuple[Level, ...] = ()
"""The forms as a few patterns, each compiled once: the newest forms in a small one, merged into
the one before when that one is no larger (a binary counter), so registering secret after secret
compiles each form about log2(n) times, not n times (the whole pattern compiled again at every
registration took 10 s for 200 secrets, and an OAuth connection registers a token each refresh)."""
_uses = 0
"""Texts masked since the last registration: once registrations stop for a while (COMPACT_AFTER
texts), the levels become one pattern again, which masks with one pass instead of one per level."""
COMPACT_AFTER = 1000
_changing = threading.Lock()
"""Held to change the registry (a hub registering in its thread while the caller's thread logs);
masking reads ``_levels`` once, without it."""
_longest = 0
_URL_SAFE = "/:@!$&'()*+,;=?~"
"""What stays literal when a secret sits in a URL's path or query (RFC 3986 sub-delims and friends)."""


def mask(secret: str) -> str:
    return "…" + secret[-4:] if len(secret) > 8 else "…"


def mask_in(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` masked (give the longest first: a part of a longer one would
    leave the rest of it)."""
    for secret in secrets:
        text = text.replace(secret, mask(secret))
    return text


def _b64(raw: bytes) -> set[str]:
    """Base64 of ``raw`` in both alphabets, padded and not, and the runs of it that appear
    whatever precedes or follows ``raw`` (``user:pass`` in ``Basic``, a key in a longer blob)."""
    out: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        out |= {whole, whole.rstrip("=")}
        for skip in range(3):  # raw may start at any offset within a 3-byte group
            part = raw[skip:]
            out.add(encode(part[: len(part) // 3 * 3]).decode())
    return out


def _encoded(value: str) -> set[str]:
    """``value`` percent-encoded and percent-decoded the usual ways, escaped in a JSON string (a
    peer echoing a request as JSON), and base64-encoded."""
    out = {value, quote(value, safe=""), quote(value, safe=_URL_SAFE), quote_plus(value), unquote(value),
           unquote_plus(value), json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    for text in (value, unquote(value)):
        for encoding in ("utf-8", "latin-1"):
            try:
                out |= _b64(text.encode(encoding))
            except UnicodeEncodeError:
                continue
    return out


def _url_parts(value: str) -> list[str]:
    """The credentials a URL carries, as written and as aiohttp sends them: the password, the
    ``user:password`` pair (``Authorization: Basic``), the query and each query value."""
    if "://" not in value:
        return []
    try:
        parts = urlsplit(value)
        from yarl import URL

        url = URL(value)
    except ValueError:
        return []
    if not parts.scheme or not parts.netloc:
        return []
    out: list[str] = []
    if parts.password is not None:
        raw_user, _, raw_password = parts.netloc.rpartition("@")[0].partition(":")
        user, password = url.user or "", url.password or ""
        out += [raw_password, password, f"{raw_user}:{raw_password}", f"{user}:{password}"]
    if parts.query:
        out += [parts.query, url.raw_query_string]
        out += [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
        out += [pair.partition("=")[2] for q in (parts.query, url.raw_query_string) for pair in q.split("&")]
    return [p for p in out if p]


def _whsec_parts(value: str) -> list[str]:
    """A Standard Webhooks secret: the base64 after ``whsec_`` and the key bytes it decodes to."""
    if not value.startswith("whsec_"):
        return []
    key = value.removeprefix("whsec_")
    try:
        raw = base64.b64decode(key, validate=False)
    except (binascii.Error, ValueError):
        return [key]
    return [key, raw.hex(), *_b64(raw)]


def forms(secret: str) -> set[str]:
    """Every form of ``secret`` that tidings may send, so a peer may echo: the value, the credential
    after an auth scheme (``Bearer <token>``, and what a ``Basic`` value decodes to), a URL's
    password, ``user:password`` and query values, a ``whsec_`` key, each also percent-encoded,
    percent-decoded, JSON-escaped and base64-encoded (``Authorization: Basic``)."""
    seeds = {secret, secret.strip()}
    words = secret.split()
    if len(words) == 2:
        scheme, credential = words
        seeds.add(credential)
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(credential, validate=True).decode()
            except (binascii.Error, ValueError):
                pair = ""
            seeds |= {pair, pair.partition(":")[2]}
    for seed in list(seeds):
        seeds.update(_url_parts(seed))
        seeds.update(_whsec_parts(seed))
    out: set[str] = set()
    for seed in seeds:
        if seed:
            out |= _encoded(seed)
    return {f for f in out if len(f) >= _MIN_LEN}


def register(secrets: Iterable[str]) -> None:
    """Remember secrets to mask, with every form :func:`forms` derives from them. Short strings
    are ignored: masking them would garble text."""
    global _longest, _uses, _levels
    added: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= _MIN_LEN and secret not in _known:
            added |= forms(secret)
    with _changing:
        added -= _known
        if not added:
            return
        _known.update(added)
        _longest = max(_longest, *map(len, added))
        _uses = 0
        level, levels = frozenset(added), list(_levels)
        while levels and len(levels[-1][0]) <= len(level):
            level |= levels.pop()[0]
        # One assignment: a thread masking meanwhile sees the old levels or the new ones.
        _levels = (*levels, (level, re.compile(_trie_pattern(level))))


Registry = tuple[set[str], int, tuple[Level, ...]]


def saved() -> Registry:
    """What is registered now, for :func:`restore` (a test forgets what it registered)."""
    return set(_known), _longest, _levels


def restore(state: Registry) -> None:
    global _known, _longest, _levels, _uses
    with _changing:
        known, _longest, levels = state
        _known, _levels, _uses = set(known), levels, 0


def _trie_pattern(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, the longest where several start at the
    same place, shaped as a trie: a plain alternation of thousands of forms tries each of them at
    every character (milliseconds per log line); a trie follows one path."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        chain = ""
        while len(node) == 1 and "" not in node:  # a chain: no group needed
            char, node = next(iter(node.items()))
            chain += char
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        text = re.escape(chain)
        if not branches:
            return text
        inner = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return text + (f"(?:{inner})?" if "" in node else inner)  # greedy: the longer form first

    return build(trie)


def _masked(m: re.Match[str]) -> str:
    return mask(m.group(0))


def _compact_when_quiet() -> None:
    global _uses, _levels
    _uses += 1
    if _uses < COMPACT_AFTER:
        return
    with _changing:
        if _uses >= COMPACT_AFTER and len(_levels) > 1:  # no registration came in between
            every = frozenset(_known)
            _levels = ((every, re.compile(_trie_pattern(every))),)


def redact(text: str) -> str:
    levels = _levels
    if not text or not levels:
        return text
    if len(levels) == 1:
        return levels[0][1].sub(_masked, text)
    _compact_when_quiet()
    # Several patterns: what any of them matches is masked, overlapping matches as one (a form
    # of one level may start inside a longer one of another).
    spans = sorted((m.start(), m.end()) for _, pattern in levels for m in pattern.finditer(text))
    if not spans:
        return text
    out: list[str] = []
    done = 0
    start, end = spans[0]
    for s, e in spans[1:]:
        if s < end:
            end = max(end, e)
            continue
        out += [text[done:start], mask(text[start:end])]
        done, (start, end) = end, (s, e)
    out += [text[done:start], mask(text[start:end]), text[end:]]
    return "".join(out)


def clip(text: str, limit: int, *, complete: bool = True, marker: str = "…") -> str:
    """``text`` masked, then cut to ``limit`` characters (``marker`` ends a cut text).
    ``complete=False``: ``text`` is only the start of something longer (the first bytes of a
    body), so its end may be the start of a secret: that tail is dropped before masking."""
    cut = not complete
    if cut and _longest > 1:
        text = text[: max(0, len(text) - (_longest - 1))]
    text = redact(text)
    if len(text) > limit:
        text, cut = text[: max(0, limit - len(marker))], True
    return text + marker if cut else text


def longest() -> int:
    """The length of the longest form registered: how far a secret may reach past a cut."""
    return _longest


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def structlog_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor that masks known secrets in every field of every log event."""
    if not _levels:
        return event
    for key, value in list(event.items()):
        if isinstance(value, BaseException):
            value = f"{type(value).__name__}: {value}"
        event[key] = redact_value(value)
    return event
