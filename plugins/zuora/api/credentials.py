"""Read and validate a customer's Zuora credentials from an Airflow connection.

Connection fields: ``host`` = REST base URL (``https://rest.zuora.com``), ``login`` =
client id, ``password`` = client secret, ``extra`` = JSON options (see ``ZuoraOptions``).
Everything is checked before the first call, with an error naming the connection and
saying what to fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from zuora.api.errors import ZuoraConfigError

log = logging.getLogger(__name__)

# The REST hosts Zuora documents (reference §2): host -> (environment, region).
ZUORA_HOSTS: dict[str, tuple[str, str]] = {
    "rest.na.zuora.com": ("production", "US Cloud 1"),
    "rest.zuora.com": ("production", "US Cloud 2"),
    "rest.sandbox.na.zuora.com": ("sandbox", "US Cloud 1 API Sandbox"),
    "rest.apisandbox.zuora.com": ("sandbox", "US Cloud 2 API Sandbox"),
    "rest.test.zuora.com": ("sandbox", "US Developer & Central Sandbox"),
    "rest.eu.zuora.com": ("production", "EU"),
    "rest.sandbox.eu.zuora.com": ("sandbox", "EU API Sandbox"),
    "rest.test.eu.zuora.com": ("sandbox", "EU Developer & Central Sandbox"),
    "rest.ap.zuora.com": ("production", "APAC"),
    "rest.test.ap.zuora.com": ("sandbox", "APAC Developer & Central Sandbox"),
    "rest.pt1.zuora.com": ("sandbox", "US Performance Test"),
}
_SANDBOX_LABELS = {"apisandbox", "sandbox", "test", "pt1"}
CONN_TYPE = "zuora"
FORM_FIELD_PREFIX = f"extra__{CONN_TYPE}__"
_CLIENT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class ZuoraOptions:
    """Options from the connection's ``extra`` JSON; every one has a sensible default."""

    page_length: int = 50  # workflows per list page (Zuora's maximum is 50)
    max_concurrency: int = 4  # exports in flight at once
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 60.0  # seconds (Zuora gives up at 120 s with a 504)
    max_attempts: int = 6  # tries per HTTP call, the first included
    max_retry_wait: float = 60.0  # cap on one wait (Retry-After included)
    max_retry_time: float = 300.0  # cap on all waits of one call
    token_refresh_margin: float = 300.0  # refresh this long before expiry (capped at 10% of life)
    max_pages: int = 10_000  # guard against pagination that never ends
    rate_limit_low_water: int = 10  # slow down when RateLimit-Remaining falls below this
    environment: str | None = None  # expected for custom hosts: production or sandbox
    allow_custom_host: bool = False  # accept a host that is not a Zuora REST host
    allow_insecure_http: bool = False  # plain http, loopback hosts only (the simulator)
    ca_bundle: str | None = None  # PEM file of the CA(s) to trust for this host, not the system's

    @classmethod
    def from_extra(cls, conn_id: str, extra: dict) -> ZuoraOptions:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(extra) - set(known))
        if unknown:
            raise ZuoraConfigError(
                f"unknown option(s) {unknown} in the connection extra; known options: {sorted(known)}",
                conn_id=conn_id,
            )
        values = {}
        for name, value in extra.items():
            kind = str(known[name].type)
            try:
                values[name] = _coerce(value, kind)
            except (TypeError, ValueError):
                raise ZuoraConfigError(
                    f"option {name!r} in the connection extra must be {kind}, got {value!r}", conn_id=conn_id
                ) from None
        options = cls(**values)
        if not 1 <= options.page_length <= 50:
            raise ZuoraConfigError("option 'page_length' must be between 1 and 50", conn_id=conn_id)
        if options.max_concurrency < 1 or options.max_attempts < 1 or options.max_pages < 1:
            raise ZuoraConfigError(
                "options 'max_concurrency', 'max_attempts' and 'max_pages' must be at least 1",
                conn_id=conn_id,
            )
        if options.environment not in (None, "production", "sandbox"):
            raise ZuoraConfigError("option 'environment' must be 'production' or 'sandbox'", conn_id=conn_id)
        if options.ca_bundle is not None and not os.path.isfile(options.ca_bundle):
            raise ZuoraConfigError(
                f"option 'ca_bundle' names {options.ca_bundle!r}, which is not a file on this machine: "
                "give the path of a PEM file of CA certificates readable by the workers",
                conn_id=conn_id,
            )
        return options


def _coerce(value, kind: str):
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError(value)
    if kind == "int":
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError(value)
        return int(float(value))
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    return None if value is None else str(value)


@dataclass(frozen=True)
class ZuoraCredentials:
    """A validated connection: where to call, who we are, and what kind of tenant it is."""

    conn_id: str
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    environment: str  # production, sandbox or unknown
    region: str  # e.g. "EU", or "custom host"
    options: ZuoraOptions

    def check_environment(self, expected: str | None, customer_id: str) -> None:
        """Refuse a connection to the other kind of tenant than the customer is registered as."""
        if expected and self.environment != "unknown" and expected != self.environment:
            raise ZuoraConfigError(
                f"customer {customer_id} is registered as {expected}, but its connection points "
                f"at a {self.environment} host ({self.base_url}); fix the connection or the "
                "customer's environment",
                conn_id=self.conn_id,
            )

    @property
    def fingerprint(self) -> str:
        """Identifies base URL + client id + secret without revealing the secret."""
        material = "\0".join((self.base_url, self.client_id, self.client_secret))
        return hashlib.sha256(material.encode()).hexdigest()[:32]


def credentials_from_connection(conn) -> ZuoraCredentials:
    """Validate an Airflow connection object and return its credentials."""
    conn_id = conn.conn_id
    extra = _extra_of(conn)
    options = ZuoraOptions.from_extra(conn_id, extra)
    base_url, scheme, host = _base_url(conn_id, conn.host, conn.port)
    environment, region = _classify(conn_id, scheme, host, options)
    client_id = (conn.login or "").strip()
    client_secret = conn.password or ""
    if not client_id:
        raise ZuoraConfigError(
            "the connection has no client id: put the OAuth client id in the 'login' field", conn_id=conn_id
        )
    if not _CLIENT_ID.match(client_id):
        raise ZuoraConfigError(
            f"the client id in 'login' is malformed ({len(client_id)} characters): "
            "a Zuora OAuth client id is a 36-character UUID such as "
            "b64e42ba-7e1a-4bc6-9146-5e1b420306b5",
            conn_id=conn_id,
        )
    if not client_secret:
        raise ZuoraConfigError(
            "the connection has no client secret: put the OAuth client secret in the 'password' field",
            conn_id=conn_id,
        )
    if client_secret != client_secret.strip():
        raise ZuoraConfigError(
            "the client secret in 'password' starts or ends with whitespace; "
            "paste it again without spaces or line breaks",
            conn_id=conn_id,
        )
    return ZuoraCredentials(conn_id, base_url, client_id, client_secret, environment, region, options)


def _extra_of(conn) -> dict:
    """The extra as options: the connection form's fields (``extra__zuora__page_length``
    or ``page_length``) count as their option; a field left empty is not set."""
    raw = conn.extra or ""
    if isinstance(raw, dict):
        extra = raw
    elif not raw.strip():
        return {}
    else:
        try:
            extra = json.loads(raw)
        except ValueError:
            raise ZuoraConfigError("the connection extra is not valid JSON", conn_id=conn.conn_id) from None
    if not isinstance(extra, dict):
        raise ZuoraConfigError("the connection extra must be a JSON object", conn_id=conn.conn_id)
    return {
        key.removeprefix(FORM_FIELD_PREFIX): value for key, value in extra.items() if value not in (None, "")
    }


def airflow_connection(base_url: str, client_id: str, client_secret: str, **extra) -> dict:
    """A customer's Airflow connection, as ``airflow connections import`` and
    ``AIRFLOW_CONN_<ID>`` (JSON) take it."""
    return {
        "conn_type": CONN_TYPE,
        "host": base_url,
        "login": client_id,
        "password": client_secret,
        "extra": extra,
    }


def _base_url(conn_id: str, host: str | None, port: int | None) -> tuple[str, str, str]:
    raw = (host or "").strip()
    if not raw:
        raise ZuoraConfigError(
            "the connection has no host: set it to the tenant's Zuora REST base "
            "URL, e.g. https://rest.zuora.com",
            conn_id=conn_id,
        )
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    if not parts.hostname:
        raise ZuoraConfigError(
            f"cannot read a host name from {raw!r}; use a base URL such as https://rest.zuora.com",
            conn_id=conn_id,
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ZuoraConfigError(
            f"the base URL must be only scheme and host, without a path such as "
            f"{parts.path!r} (the Workflow API has no /v1 prefix); "
            f"use {parts.scheme}://{parts.netloc}",
            conn_id=conn_id,
        )
    if parts.username or parts.password:
        raise ZuoraConfigError(
            "the base URL must not carry credentials; put the client id in "
            "'login' and the secret in 'password'",
            conn_id=conn_id,
        )
    hostname = parts.hostname.lower()
    port = parts.port or port
    netloc = f"{hostname}:{port}" if port else hostname
    return f"{parts.scheme}://{netloc}", parts.scheme, hostname


def _classify(conn_id: str, scheme: str, host: str, options: ZuoraOptions) -> tuple[str, str]:
    if scheme not in ("https", "http"):
        raise ZuoraConfigError(f"unsupported URL scheme {scheme!r}: use https", conn_id=conn_id)
    if scheme == "http":
        if not (_is_loopback(host) and options.allow_insecure_http):
            raise ZuoraConfigError(
                "the base URL must use https; plain http is accepted only for a "
                'loopback host with "allow_insecure_http": true in the extra '
                "(the local simulator)",
                conn_id=conn_id,
            )
    if host in ZUORA_HOSTS:
        return ZUORA_HOSTS[host]
    if host.endswith(".zuora.com"):
        labels = set(host.split("."))
        environment = "sandbox" if labels & _SANDBOX_LABELS else "production"
        log.warning(
            "Connection %s: %s is not one of Zuora's documented REST hosts; treating it as "
            "a %s tenant. Check the base URL if calls fail with 401.",
            conn_id,
            host,
            environment,
        )
        return options.environment or environment, "unlisted zuora.com host"
    if not options.allow_custom_host and not (scheme == "http" and options.allow_insecure_http):
        raise ZuoraConfigError(
            f"{host} is not a Zuora REST host (such as rest.zuora.com or "
            'rest.eu.zuora.com); fix the base URL, or set "allow_custom_host": '
            "true in the extra for a proxy",
            conn_id=conn_id,
        )
    return options.environment or "unknown", "custom host"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
