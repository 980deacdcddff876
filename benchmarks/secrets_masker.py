"""Airflow's secrets masker as the fleet grows: what one more secret and one log line cost a
process that already masks N secrets.

Run: .venv/bin/python benchmarks/secrets_masker.py [--sizes 1000,3000,10000,30000] [--repeat 3]
Writes the "Secrets masker" section of RESULTS.md.

Why: in Airflow 3.3.2 every Connection loaded from the metadata database masks its password
(``Connection.on_db_load``: the password and its URL-quoted form) and every Variable masks its
value when its key looks sensitive (``Variable.on_db_load``; ``zuora_oauth_token_<...>``
contains "token"). The API server, which serves the Execution API, loads them for every task
that asks, so one long-lived API server process holds a pattern per customer password and per
token value it ever served. ``SecretsMasker.add_mask`` recompiles one regex of every pattern held
for each new one, and every log record the process writes is redacted with that regex. This
times both, in this process, with Airflow's own ``SecretsMasker``, for masks of the length of
the simulator's client secrets and of a stored token value.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import time

import _common
import scale_model

LINE = (
    'INFO:     127.0.0.1:52342 - "GET /execution/connections/zuora_f00123 HTTP/1.1" 200 OK '
    "task_instance_id=01a24ac6-3517-77f6-927a-ea6c692dff9c"
)


def secret(kind: str) -> str:
    if kind == "password":  # as the simulator's (and Zuora's) client secrets: 40 base64 characters
        return base64.b64encode(secrets.token_bytes(30)).decode()
    # a token Variable's value: {"expires_at": ..., "token": "<Fernet blob>"}, ~250 characters
    return json.dumps({"expires_at": time.time() + 3600, "token": secrets.token_urlsafe(180)})


def measure(sizes: list[int], repeat: int) -> list[dict]:
    from airflow._shared.secrets_masker.secrets_masker import SecretsMasker

    out = []
    for kind in ("password", "token value"):
        masker = SecretsMasker()
        masker.patterns, masker.replacer = set(), None
        for size in sizes:
            # the masker's own escaping and set, without one compile per secret on the way up
            import re

            while len(masker.patterns) < size - repeat:
                masker.patterns.add(re.escape(secret(kind)))
            adds = []
            for _ in range(repeat):
                clock = time.perf_counter()
                masker.add_mask(secret(kind))
                adds.append(time.perf_counter() - clock)
            clock = time.perf_counter()
            for _ in range(20):
                assert masker.replacer is not None
                masker.replacer.sub("***", LINE)
            line = (time.perf_counter() - clock) / 20
            out.append(
                {
                    "kind": kind,
                    "patterns": len(masker.patterns),
                    "add_s": statistics.median(adds),
                    "line_s": line,
                    "pattern_chars": sum(map(len, masker.patterns)),
                }
            )
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000,30000")
    parser.add_argument("--repeat", type=int, default=3, help="adds timed at each size (median)")
    args = parser.parse_args()
    machine, date = _common.machine(), _common.utc_date()
    rows = measure([int(s) for s in args.sizes.split(",")], args.repeat)
    scale_model.save("masker", {"date": date, "machine": machine, "rows": rows})  # the model's units
    table = [
        "| masks of | patterns held | one more secret (`add_mask`: the regex recompiled) | "
        "per pattern held | one log line redacted | per pattern held |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['kind']} | {r['patterns']:,} | {r['add_s'] * 1000:,.1f} ms | "
            f"{r['add_s'] / r['patterns'] * 1e6:.2f} µs | {r['line_s'] * 1000:,.2f} ms | "
            f"{r['line_s'] / r['patterns'] * 1e9:.0f} ns |"
        )
    body = "\n".join(
        [
            f"Machine: {machine}. Date: {date}.",
            f"Command: `{_common.command('secrets_masker.py')}`: Airflow 3.3.2's `SecretsMasker` in "
            "this process, filled to each size with masks of the simulator's client secrets "
            "(40 base64 characters) or of stored token values (JSON with a Fernet blob, about 270); the "
            f"median of {args.repeat} `add_mask` calls at each size, then one API-server-like log "
            "line redacted 20 times.",
            "",
            *table,
            "",
            "Why it matters: a long-lived API server masks every customer's password (twice: as "
            "stored and URL-quoted, one pattern when they are equal) the first time a task fetches "
            'its connection, and every token Variable value it loads (the key holds "token"): '
            "adding N secrets one by one costs about N^2 / 2 x the per-pattern time above, and "
            'every log line it writes pays the redaction. See "Fleet run" and SCALE.md.',
        ]
    )
    _common.write_section("Secrets masker", body)
    print(body)


if __name__ == "__main__":
    main()
