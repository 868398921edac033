"""Masking of known secrets: ``redact``, ``redact_value`` and the structlog processor that
``tidings.logs.configure`` installs (DESIGN rule 7: secrets never in logs, errors or audit)."""

from __future__ import annotations

import base64
import io
import json
import secrets as pysecrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import structlog
import yarl

from tidings.config import parse_config
from tidings.logs import configure
from tidings.security import redact as redact_mod
from tidings.security.redact import clip, mask, redact, redact_value, register, structlog_processor


def fresh(prefix: str = "s") -> str:
    """A secret no other test registered (the registry is process-wide)."""
    return f"{prefix}-{pysecrets.token_urlsafe(18)}"


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty registry for tests that need to see the "nothing registered" path."""
    saved = redact_mod.saved()
    redact_mod.restore((set(), 0, ()))
    yield
    redact_mod.restore(saved)


def test_mask_keeps_only_the_last_four_characters() -> None:
    assert mask("sk_live_1234567890abcd") == "…abcd"
    assert mask("123456789") == "…6789"
    # Too short to show anything of it.
    assert mask("12345678") == "…"
    assert mask("abcdef") == "…"


def test_registered_secret_is_masked_everywhere_in_a_text() -> None:
    secret = fresh() + "WXYZ"
    register([secret])
    text = f"POST failed: token={secret}; retrying with {secret}!"
    out = redact(text)
    assert secret not in out
    assert out == "POST failed: token=…WXYZ; retrying with …WXYZ!"


def test_unregistered_text_is_left_alone() -> None:
    register([fresh()])
    text = "nothing to hide here: HTTP 500 Internal Server Error"
    assert redact(text) == text
    assert redact("") == ""


def test_short_strings_are_not_registered_so_text_is_not_garbled(clean_registry: None) -> None:
    register(["abc", "12345", "", "on"])
    text = "abc 12345 on and on"
    assert redact(text) == text
    assert redact_mod._levels == ()
    # Six characters is the minimum that is masked.
    register(["abcdef"])
    assert redact("xx abcdef yy") == "xx … yy"


def test_nothing_registered_returns_the_text_unchanged(clean_registry: None) -> None:
    assert redact("anything at all") == "anything at all"
    event = {"event": "x", "token": "whatever"}
    assert structlog_processor(None, "info", dict(event)) == event


def test_longest_secret_wins_when_one_contains_another() -> None:
    short = fresh("inner")
    long = short + "-and-more-EFGH"
    register([short])
    register([long])
    assert redact(f"a {long} b") == "a …EFGH b"
    assert redact(f"a {short} b") == f"a {mask(short)} b"


def test_regex_metacharacters_in_secrets_are_literal() -> None:
    secret = "p4ss.w*rd+(x)[y]$" + pysecrets.token_hex(4)
    register([secret])
    assert redact(f"pw={secret}") == f"pw={mask(secret)}"
    # The dot is not a wildcard: a near miss stays untouched.
    near = secret.replace(".", "X", 1)
    assert redact(near) == near


def test_redact_value_walks_dicts_lists_and_tuples() -> None:
    secret = fresh() + "TAIL"
    register([secret])
    value = {
        "a": secret,
        "nested": {"list": [1, f"x{secret}x", None], "tuple": (secret, 2)},
        "n": 3,
    }
    out = redact_value(value)
    assert out == {
        "a": "…TAIL",
        "nested": {"list": [1, "x…TAILx", None], "tuple": ("…TAIL", 2)},
        "n": 3,
    }
    assert isinstance(out["nested"]["tuple"], tuple)
    assert secret not in json.dumps(out)


def test_processor_masks_fields_and_exceptions() -> None:
    secret = fresh() + "QRST"
    register([secret])
    event = {
        "event": f"login with {secret}",
        "headers": {"Authorization": f"Bearer {secret}"},
        "error": ValueError(f"bad token {secret}"),
        "count": 3,
    }
    out = structlog_processor(None, "info", event)
    assert out["event"] == "login with …QRST"
    assert out["headers"] == {"Authorization": "Bearer …QRST"}
    assert out["error"] == "ValueError: bad token …QRST"
    assert out["count"] == 3


def configure_into(buffer: io.StringIO, level: str) -> None:
    """tidings' real logging configuration, writing into ``buffer``."""
    configure(level=level, json=True, file=buffer)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_into(buffer, "DEBUG")
    yield buffer
    structlog.reset_defaults()


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_configured_logging_never_writes_a_registered_secret(captured_logs: io.StringIO) -> None:
    secret = fresh("whsec") + "LMNO"
    register([secret])
    log = structlog.get_logger(f"test.redact.{pysecrets.token_hex(4)}")
    # A host of its own: other tests register whole webhook URLs (they are credentials) as secrets.
    host = f"h{pysecrets.token_hex(4)}.example.com"
    log.info("sending", url=f"https://{host}/hook?key={secret}", headers={"X-Token": secret})
    log.warning(f"peer answered 401 for {secret}")
    try:
        raise RuntimeError(f"the peer echoed {secret}")
    except RuntimeError:
        log.exception("send failed")
    log.info("unrelated", value="short")
    raw = captured_logs.getvalue()
    assert secret not in raw
    lines = _lines(captured_logs)
    assert len(lines) == 4
    assert lines[0]["url"] == f"https://{host}/hook?key=…LMNO"
    assert lines[0]["headers"] == {"X-Token": "…LMNO"}
    assert lines[1]["event"] == "peer answered 401 for …LMNO"
    # The traceback is rendered first, then masked.
    assert "RuntimeError: the peer echoed …LMNO" in str(lines[2]["exception"])
    assert lines[3]["value"] == "short"


def test_secret_registered_after_configuring_is_masked_too(captured_logs: io.StringIO) -> None:
    log = structlog.get_logger(f"test.redact.{pysecrets.token_hex(4)}")
    secret = fresh() + "LATE"
    log.info("before", value="x")
    register([secret])
    log.info("after", value=secret)
    assert secret not in captured_logs.getvalue()
    assert _lines(captured_logs)[-1]["value"] == "…LATE"


def test_log_level_filters(captured_logs: io.StringIO) -> None:
    configure_into(captured_logs, "WARNING")
    log = structlog.get_logger(f"test.redact.{pysecrets.token_hex(4)}")
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in _lines(captured_logs)] == ["shown"]


# -- derived forms, and masking before cutting -------------------------------------------------


def pieces(text: str, secret: str, size: int = 8) -> list[str]:
    """The ``size``-character pieces of ``secret`` found in ``text``."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1) if secret[i : i + size] in text]


def test_a_url_with_credentials_masks_what_aiohttp_sends_of_it() -> None:
    password, token = fresh("pw") + "/+ &", fresh("tk") + " +/"
    url = f"https://ops:{quote(password, safe='')}@hooks.example/in?token={quote(token, safe='')}&x=1"
    register([url])
    basic = base64.b64encode(f"ops:{password}".encode()).decode()
    sent = str(yarl.URL(url).raw_query_string)  # the query as aiohttp puts it on the wire
    text = redact(f"Authorization: Basic {basic} for /in?{sent} ({password}, {quote(password, safe='')}, {token})")
    for form in (basic, password, quote(password, safe=""), token, sent):
        assert not pieces(text, form), (form, text)


def test_the_credential_after_a_scheme_and_whsec_keys_are_masked() -> None:
    bearer, key = fresh("bearer"), pysecrets.token_bytes(24)
    whsec = "whsec_" + base64.b64encode(key).decode()
    register([f"Bearer {bearer}", whsec])
    text = redact(f"got {bearer} and {whsec[6:]} and {key.hex()} and {base64.urlsafe_b64encode(key).decode()}")
    assert not pieces(text, bearer) and not pieces(text, whsec[6:]) and not pieces(text, key.hex()), text


def test_base64_of_a_secret_is_masked_whatever_precedes_it() -> None:
    secret = fresh("inner")
    register([secret])
    for prefix in ("", "a", "ab", "abc:"):
        encoded = base64.b64encode(f"{prefix}{secret}".encode()).decode()
        text = redact(f"Basic {encoded}")
        # Only the group mixing the prefix with the secret's first bytes, and the mask, remain.
        assert len(text) <= len("Basic ") + 8 + len(mask("x" * 9)) + 4, (prefix, text)


def test_a_cut_never_splits_a_secret_open() -> None:
    secret = fresh("cut") + "0123456789abcdef"  # 39 characters
    register([secret])
    for at in range(250, 300):
        text = "x" * at + secret + " and more after it"
        cut = clip(text, 300)
        assert len(cut) <= 300 and not pieces(cut, secret, 5), (at, cut)
        # Only the start of a longer text: a secret crossing its end is dropped, never half shown.
        partial = clip(text[: at + 20], 300, complete=False)
        assert not pieces(partial, secret, 5) and partial.endswith("…"), (at, partial)
    assert clip("short", 300) == "short"


def test_loading_a_config_registers_its_secrets() -> None:
    password = fresh("db")
    parse_config({"server": {"database": f"postgresql://tidings:{password}@db.example/tidings"}})
    assert password not in redact(f"connection failed: password {password} refused")


def test_many_secrets_registered_one_by_one_stay_few_patterns_and_all_are_masked(clean_registry: None) -> None:
    """Each registration compiles only a small pattern (merged into larger ones as a binary counter
    does); every secret, the first and the last, is masked whatever level holds it."""
    made = [fresh(f"k{i}") for i in range(300)]
    for secret in made:
        register([secret])
        assert redact(f"<{secret}>") == f"<{mask(secret)}>"
    assert 1 < len(redact_mod._levels) <= 10
    sizes = [len(forms) for forms, _ in redact_mod._levels]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes), sizes
    text = " ".join(made[::37])
    assert redact(text) == " ".join(mask(s) for s in made[::37])


def test_a_secret_inside_a_longer_one_of_another_level_leaves_nothing_visible(clean_registry: None) -> None:
    inner = fresh("inner")
    register([inner])
    for _ in range(3):  # other registrations in between: the two end up in different patterns
        register([fresh("other")])
    outer = "XY-" + inner + "-tail-ABCD"
    register([outer])
    assert len(redact_mod._levels) > 1
    assert redact(f"a {outer} b") == "a …ABCD b", "one mask over both"
    assert redact(f"a {inner} b") == f"a {mask(inner)} b"
    longer = inner + "-grown-WXYZ"  # starts where the older one does
    register([longer])
    assert redact(f"[{longer}]") == "[…WXYZ]"


def test_once_registrations_stop_the_patterns_become_one(clean_registry: None) -> None:
    made = [fresh(f"q{i}") for i in range(6)]
    for secret in made:
        register([secret])
    assert len(redact_mod._levels) > 1
    for _ in range(redact_mod.COMPACT_AFTER):
        redact("nothing secret here")
    assert len(redact_mod._levels) == 1
    assert redact(" ".join(made)) == " ".join(mask(s) for s in made)
    register([fresh("new")])  # a new one after: a small pattern of its own again
    assert len(redact_mod._levels) == 2
