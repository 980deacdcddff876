"""Replace the values of secrets inside a Zuora export, keeping its structure.

What counts as a secret:
- any value under a key named like a credential (``password``, ``token``, ``api_key``,
  ``client_secret``, ``authorization`` ...), and every value of an ``authorization`` block
  except its ``type``;
- the ``value`` of a ``{"key": ..., "value": ...}`` pair (headers, form data) whose key looks
  secret (``Authorization``, ``X-API-Key``, ``*token*``, ``*secret*``, ``*password*``, ``*key*``);
- URL query parameters with such names, and passwords in URL user info;
- in text, the value of such a name written as JSON, YAML or a header (``"password": "x"``,
  ``client_secret: x``, ``X-API-Key: x``);
- ``Bearer``/``Basic`` credentials written inside any text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

REDACTED = "***REDACTED***"

_SECRET_FIELD = re.compile(
    r"(passw(or)?d|passphrase|^pass$|^pwd$|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|"
    r"^auth$|authorization|credential|signature|session[-_]?id|cookie)",
    re.IGNORECASE,
)
# a header or parameter name containing one of these words (in any case) carries a secret
_SECRET_WORDS = (
    "auth",
    "token",
    "secret",
    "pass",
    "pwd",
    "key",
    "signature",
    "session",
    "credential",
    "cookie",
)
_SECRET_NAME = re.compile("|".join(_SECRET_WORDS), re.IGNORECASE)
_NOT_SECRET_FIELD = {"type", "auth_type", "token_type", "authorization_type"}
_QUERY_PARAM = re.compile(r"(?P<lead>^|[?&;,\s])(?P<name>[^=&#\s?;,]+)=(?P<value>[^&#\s\"',;]*)")
_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/:@\s]*):(?P<password>[^/@\s]+)@", re.IGNORECASE
)
_INLINE_CREDENTIAL = re.compile(r"\b(?P<scheme>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")
# ``name: value`` where a key may stand: a quoted name anywhere (JSON, Python's repr), a header
# opening a quoted string (``-H 'X-API-Key: v'``), or a bare name at a line's start (YAML, a
# list item) or after ``{``/``,`` (a flow map); never a word inside prose ("a token: ...").
# The value is quoted, or the rest of the line up to a delimiter; a Bearer/Basic value is left
# to _INLINE_CREDENTIAL, which keeps its scheme.
_KEY_VALUE = re.compile(
    r"""(?P<key>(?:(?P<q>["'])(?P<quoted>[\w.-]+)(?P=q)|(?<=["'])(?P<header>[\w.-]+)"""
    r"""|(?:^|(?<=[{,]))[ \t]*(?:-[ \t]+)?(?P<bare>[\w.-]+))[ \t]*:[ \t]*)"""
    r"""(?P<value>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'"""
    r"""|(?!(?:Bearer|Basic|Token)\s)[^\s,;}\]'"]+(?:[ \t]+[^\s,;}\]'"#]+)*)""",
    re.MULTILINE,
)
_EMPTY = {'""', "''", "null", "None", "~"}


@lru_cache(maxsize=4096)  # exports repeat the same few hundred keys
def is_secret_field(name: str) -> bool:
    """A JSON key whose value is a credential (``password``, ``client_secret``, ...)."""
    return name.lower() not in _NOT_SECRET_FIELD and bool(_SECRET_FIELD.search(name))


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """A header or query parameter name that carries a credential (``X-API-Key``, ...)."""
    return bool(_SECRET_NAME.search(name))


def _has_secret_word(text: str) -> bool:
    """Whether ``_SECRET_NAME`` could match anywhere: a substring search when the text is
    ASCII (fast), the regex itself otherwise (its case-insensitive matching goes beyond
    ``str.lower``, e.g. "ſ" matches "s")."""
    if not text.isascii():
        return bool(_SECRET_NAME.search(text))
    lowered = text.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def redact_text(text: str) -> str:
    """Secrets in free text: query parameters, URL passwords, ``name: value`` pairs (JSON,
    YAML, headers), inline Bearer/Basic tokens."""
    if "=" in text and _has_secret_word(text):
        text = _QUERY_PARAM.sub(
            lambda m: (
                f"{m['lead']}{m['name']}={REDACTED}"
                if is_secret_name(m["name"]) and m["value"]
                else m.group(0)
            ),
            text,
        )
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    if ":" in text and _has_secret_word(text):
        text = _KEY_VALUE.sub(_redact_key_value, text)
    if "Bearer" in text or "Basic" in text or "Token" in text:  # the regex is the slow part
        text = _INLINE_CREDENTIAL.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
    return text


def _redact_key_value(match: re.Match) -> str:
    name = match["quoted"] or match["header"] or match["bare"]
    value = match["value"]
    if not is_secret_field(name) or value in _EMPTY:
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{quote}{REDACTED}{quote}"


def _blank(value: Any) -> Any:
    """The marker in place of a secret value (empty and null values stay as they are)."""
    if value is None or value == "" or isinstance(value, bool):
        return value
    if isinstance(value, (dict, list)):
        return redact_all(value)
    return REDACTED


def redact_all(value: Any) -> Any:
    """Every leaf replaced, except ``type`` keys (an authorization block)."""
    if isinstance(value, dict):
        return {
            k: (v if k in _NOT_SECRET_FIELD and not isinstance(v, (dict, list)) else _blank(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return _blank(value)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret value replaced by ``REDACTED``."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    if not isinstance(value, dict):
        return value
    pair_name = value.get("key") if isinstance(value.get("key"), str) else value.get("name")
    secret_pair = isinstance(pair_name, str) and "value" in value and is_secret_name(pair_name)
    result = {}
    for key, item in value.items():
        if secret_pair and key == "value":
            result[key] = _blank(item)
        elif isinstance(key, str) and key.lower() == "authorization" and isinstance(item, dict):
            result[key] = redact_all(item)
        elif isinstance(key, str) and is_secret_field(key) and not isinstance(item, (dict, list)):
            result[key] = _blank(item)
        else:
            result[key] = redact(item)
    return result
