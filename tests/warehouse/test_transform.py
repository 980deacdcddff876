"""Timestamps of every Zuora format, Rails time zones, repairs and redaction."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.warehouse.factories import SECRET, export
from zuora.redaction import REDACTED, redact, redact_text
from zuora.warehouse.rails_timezones import RAILS_TO_IANA
from zuora.warehouse.transform import make_storable, parse_zuora_timestamp, timezone_to_iana


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2019-05-31T14:52:38.171Z", datetime(2019, 5, 31, 14, 52, 38, 171000, tzinfo=UTC)),
        ("2021-02-04T13:39:10.530+08:00", datetime(2021, 2, 4, 5, 39, 10, 530000, tzinfo=UTC)),
        ("2021-02-04T13:39:10-05:30", datetime(2021, 2, 4, 19, 9, 10, tzinfo=UTC)),
        ("2019-09-10 19:32:21 UTC", datetime(2019, 9, 10, 19, 32, 21, tzinfo=UTC)),
        ("2014-12-23 11:17:51", datetime(2014, 12, 23, 11, 17, 51, tzinfo=UTC)),
        ("2014-12-23T11:17:51", datetime(2014, 12, 23, 11, 17, 51, tzinfo=UTC)),
        ("2019-09-19T12:35:43.942123456Z", datetime(2019, 9, 19, 12, 35, 43, 942123, tzinfo=UTC)),
        ("2024-01-01T00:30:00+0100", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_every_timestamp_format_becomes_utc(text, expected):
    parsed = parse_zuora_timestamp(text)
    assert parsed == expected and parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_timestamps_are_none(text):
    assert parse_zuora_timestamp(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2019-13-45T00:00:00Z",
        "31/05/2019 14:52",
        1559314358,
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: beyond Python's datetime
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    ],
)
def test_unreadable_timestamps_raise(text):
    with pytest.raises(ValueError):
        parse_zuora_timestamp(text)


def test_rails_names_map_to_real_iana_zones():
    assert len(RAILS_TO_IANA) >= 150
    for iana in RAILS_TO_IANA.values():
        ZoneInfo(iana)  # raises if not a real zone
    assert timezone_to_iana("Eastern Time (US & Canada)") == "America/New_York"
    assert timezone_to_iana("Pacific Time (US & Canada)") == "America/Los_Angeles"
    assert timezone_to_iana("Sydney") == "Australia/Sydney"
    assert timezone_to_iana("London") == "Europe/London"
    assert timezone_to_iana("UTC") == "Etc/UTC"
    assert timezone_to_iana("Europe/Berlin") == "Europe/Berlin"  # already IANA
    assert timezone_to_iana("Atlantis") is None and timezone_to_iana(None) is None


def test_make_storable_removes_nul_and_lone_surrogates_at_any_depth():
    deep = current = {}
    for _ in range(3000):
        current["x"] = {}
        current = current["x"]
    current["bad\x00key"] = "a\x00b\ud800c"
    clean, repairs = make_storable(deep)
    node = clean
    for _ in range(3000):
        node = node["x"]
    assert node == {"badkey": "ab\ufffdc"}
    assert repairs == {"nul_bytes", "invalid_unicode"}


def test_redaction_replaces_secret_values_and_keeps_structure():
    original = export(7, secret_suffix="zz")
    redacted = redact(original)
    text = repr(redacted)
    assert SECRET not in text
    callout = redacted["tasks"][1]["parameters"]
    assert callout["authorization"] == {"type": "basic", "username": REDACTED, "password": REDACTED}
    assert callout["headers"] == [
        {"key": "Content-Type", "value": "application/json"},
        {"key": "X-API-Key", "value": REDACTED},
        {"key": "Authorization", "value": REDACTED},
    ]
    assert callout["url"] == (
        f"https://api.crm-example.com/v2/accounts/{{{{Data.Account.Id}}}}?api_key={REDACTED}&format=json"
    )
    assert redacted["tasks"][0]["parameters"]["client_secret"] == REDACTED
    assert redacted["tasks"][0]["parameters"]["zoql"] == original["tasks"][0]["parameters"]["zoql"]
    assert redacted["workflow"] == original["workflow"]
    assert redacted["linkages"] == original["linkages"]
    assert redact(
        {
            "note": "curl -H 'Authorization: Bearer abcdefgh12345'",
            "link": "https://user:hunter2@example.com/x?token=t0k&page=2",
            "auth_type": "oauth",
            "author": "Jane",
        }
    ) == {
        "note": f"curl -H 'Authorization: Bearer {REDACTED}'",
        "link": f"https://user:{REDACTED}@example.com/x?token={REDACTED}&page=2",
        "auth_type": "oauth",
        "author": "Jane",
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        # the fast paths (no secret word, no "Bearer"/"Basic"/"Token") leave text alone ...
        ("a=1&b=2 plain text", "a=1&b=2 plain text"),
        ("https://example.com/x?page=2", "https://example.com/x?page=2"),
        # ... and never skip a secret, in any case or spelling the regex itself matches
        ("https://x.test/?API_KEY=abc&page=2", f"https://x.test/?API_KEY={REDACTED}&page=2"),
        ("see https://x.test/?paſſword=abc", f"see https://x.test/?paſſword={REDACTED}"),
        ("q?sıgnature=abc", f"q?sıgnature={REDACTED}"),
        ("Token abcdefgh12345", f"Token {REDACTED}"),
    ],
)
def test_redact_text_fast_paths_agree_with_the_patterns(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # JSON, Python's repr and YAML: a secret key's value, quoted or not
        ('{"password": "hunter2"}', f'{{"password": "{REDACTED}"}}'),
        ('{"client_secret":"a\\"b", "page": 2}', f'{{"client_secret":"{REDACTED}", "page": 2}}'),
        ("{'api_key': 'abc', 'n': 1}", f"{{'api_key': '{REDACTED}', 'n': 1}}"),
        ("client_secret: hunter2", f"client_secret: {REDACTED}"),
        (
            "auth:\n  password: correct horse battery\n  user: jo",
            f"auth:\n  password: {REDACTED}\n  user: jo",
        ),
        ("- token: t0k3n", f"- token: {REDACTED}"),
        ("{password: hunter2, user: jo}", f"{{password: {REDACTED}, user: jo}}"),
        # a header written in a command line
        ("curl -H 'X-API-Key: abc123' https://x.test", f"curl -H 'X-API-Key: {REDACTED}' https://x.test"),
        # empty values, non-secret keys and prose stay as they are
        (
            '{"password": "", "token": null, "token_type": "bearer"}',
            '{"password": "", "token": null, "token_type": "bearer"}',
        ),
        (
            "Zuora refused a freshly minted token: the client credentials were revoked",
            "Zuora refused a freshly minted token: the client credentials were revoked",
        ),
        ("Authorization: Bearer abcdefgh12345", f"Authorization: Bearer {REDACTED}"),
    ],
)
def test_redact_text_finds_secrets_written_as_json_or_yaml(text, expected):
    assert redact_text(text) == expected
