"""Turning what Zuora returns into what Postgres stores.

- ``parse_zuora_timestamp``: every timestamp format the Workflow API uses, to aware UTC.
- ``timezone_to_iana``: Rails time zone names (and IANA names) to IANA.
- ``make_storable``: remove what Postgres text/jsonb cannot hold (NUL, lone surrogates).
- ``canonical_json`` / ``content_hash``: a stable JSON form and its sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zuora.warehouse.rails_timezones import RAILS_TO_IANA

_TIMESTAMP = re.compile(
    r"^\s*(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)


def parse_zuora_timestamp(value: Any) -> datetime | None:
    """Aware UTC datetime from ``...Z``, ``...+08:00``, ``... UTC`` or naive (= UTC) text.

    Returns None for None or ""; raises ValueError for anything else it cannot read.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp is a {type(value).__name__}, not a string")
    match = _TIMESTAMP.match(value)
    if not match:
        raise ValueError(f"unrecognised timestamp format: {value[:80]!r}")
    clock = match["time"]
    if "." in clock:  # Python reads at most 6 fractional digits
        whole, fraction = clock.split(".")
        clock = f"{whole}.{fraction[:6]:0<6}"
    parsed = datetime.fromisoformat(f"{match['date']}T{clock}")
    zone = (match["zone"] or "").upper()
    if zone in ("", "Z", "UTC", "GMT"):
        return parsed.replace(tzinfo=UTC)
    sign = 1 if zone[0] == "+" else -1
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    try:
        return parsed.replace(tzinfo=timezone(sign * offset)).astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before year 1 once in UTC
        raise ValueError(f"timestamp out of range in UTC: {value[:80]!r}") from None


def timezone_to_iana(name: Any) -> str | None:
    """The IANA name for a Rails ("Eastern Time (US & Canada)") or IANA time zone name."""
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()
    if name in RAILS_TO_IANA:
        return RAILS_TO_IANA[name]
    if "/" in name or name in ("UTC", "GMT"):
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable_text(text: str, repairs: set[str]) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
        repairs.add("nul_bytes")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _LONE_SURROGATE.sub("\ufffd", text)
        repairs.add("invalid_unicode")
    return text


def make_storable(value: Any, repairs: set[str] | None = None) -> tuple[Any, set[str]]:
    """A copy of ``value`` Postgres text/jsonb can hold, and what had to be repaired.

    NUL characters are removed ("nul_bytes") and lone surrogates become U+FFFD
    ("invalid_unicode"), in keys and values alike. Works iteratively, so any depth is fine.
    """
    repairs = set() if repairs is None else repairs
    if isinstance(value, str):
        return _storable_text(value, repairs), repairs
    if not isinstance(value, (dict, list)):
        return value, repairs
    root: Any = {} if isinstance(value, dict) else []
    stack = [(value, root)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            if isinstance(item, (dict, list)):
                copy: Any = {} if isinstance(item, dict) else []
                stack.append((item, copy))
            elif isinstance(item, str):
                copy = _storable_text(item, repairs)
            else:
                copy = item
            if isinstance(target, dict):
                target[_storable_text(key, repairs) if isinstance(key, str) else key] = copy
            else:
                target.append(copy)
    return root, repairs


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal data gives equal text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    )


def content_hash(value: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()


def list_item_id(item: Any) -> int | None:
    """The workflow id of a list item, or None when it has no usable one."""
    if not isinstance(item, dict):
        return None
    value = item.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**63 else None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 19:
        return int(value.strip()) or None
    return None
