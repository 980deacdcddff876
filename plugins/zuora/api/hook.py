"""ZuoraHook: the one way this project talks to a Zuora tenant's Workflow API.

    hook = ZuoraHook("zuora_acme", track_id="run-2026-11-29-acme")
    listing = hook.list_workflows()
    for item in listing: ...          # every workflow, across all pages
    listing.complete                  # True once the last page was reached
    for workflow_id, export, error in hook.export_workflows(ids): ...
    hook.task_usage(start, end)       # {day: tasks} of the whole tenant (metrics.json)

Each HTTP call is retried inside the hook (tenacity) for seconds: 429 waits Retry-After or
RateLimit-Reset, 5xx, connection errors and timeouts back off exponentially with jitter,
within bounded attempts and time. A POST (an import, a write into the tenant) is retried only
when Zuora surely did not perform it (``surely_not_performed``: a 429, a connection never
opened, a failed token call), never after a timeout, a reset or a 5xx. A 401 drops the token,
mints a new one and retries once; a 401 with a fresh token is a permanent ``ZuoraAuthError``.
Errors are typed (zuora.api.errors).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import urllib3
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

from zuora.api.credentials import ZuoraCredentials, credentials_from_connection
from zuora.api.errors import (
    ZuoraAuthError,
    ZuoraClientError,
    ZuoraConfigError,
    ZuoraError,
    ZuoraMalformedResponseError,
    ZuoraNotFoundError,
    ZuoraNotSentError,
    ZuoraRateLimitError,
    ZuoraTimeoutError,
    ZuoraTransientError,
)
from zuora.api.token_cache import ProcessTokenStore, Token, TokenCache, TokenStore
from zuora.redaction import redact_text

_TRACK_ID_FORBIDDEN = re.compile(r"[^\x21-\x7e]|[:;\"']")


class ZuoraHook(BaseHook):
    """Hook for the Zuora Workflow REST API (OAuth client credentials)."""

    conn_name_attr = "zuora_conn_id"
    default_conn_name = "zuora_default"
    conn_type = "zuora"
    hook_name = "Zuora"

    def __init__(
        self,
        zuora_conn_id: str = default_conn_name,
        *,
        track_id: str | None = None,
        token_store: TokenStore | None = None,
    ):
        super().__init__()
        self.zuora_conn_id = zuora_conn_id
        self.track_id = _TRACK_ID_FORBIDDEN.sub("-", track_id)[:64] if track_id else None
        self.stats: Counter[str] = Counter()
        self._token_store = token_store
        self._credentials: ZuoraCredentials | None = None
        self._tokens: TokenCache | None = None
        self._session: requests.Session | None = None
        self._lock = threading.Lock()
        self._not_before = 0.0  # pacing when RateLimit-Remaining runs low

    # -- connection ---------------------------------------------------------------------

    @property
    def credentials(self) -> ZuoraCredentials:
        """The validated connection; raises ``ZuoraConfigError`` saying what to fix."""
        if self._credentials is None:
            self._credentials = credentials_from_connection(self.get_connection(self.zuora_conn_id))
            _mask(self._credentials.client_secret)
        return self._credentials

    def get_conn(self) -> requests.Session:
        """The pooled, authenticated HTTP session of this hook: every request carries a
        bearer token (minted or cached, see ``ZuoraTokenAuth``); certificates always verified.

            hook.get_conn().get(hook.credentials.base_url + "/workflows", params={"page": 1})
        """
        if self._session is None:
            options = self.credentials.options
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=options.max_concurrency + 2, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers.update(
                {"Accept": "application/json", "Accept-Encoding": "gzip", "User-Agent": "zuora-workflow-sync"}
            )
            # Proxy and CA-bundle settings read from the environment once, here, instead of
            # on every request (a millisecond of CPU each); ~/.netrc is never used.
            session.trust_env = False
            session.proxies = requests.utils.get_environ_proxies(self.credentials.base_url)
            session.verify = (
                options.ca_bundle
                or os.environ.get("REQUESTS_CA_BUNDLE")
                or os.environ.get("CURL_CA_BUNDLE")
                or True
            )
            if self.track_id:
                session.headers["Zuora-Track-Id"] = self.track_id
            session.auth = ZuoraTokenAuth(self._token_cache(), on_resend=lambda: self._count("requests"))
            self._session = session
        return self._session

    def test_connection(self) -> tuple[bool, str]:
        """Mint a token and read one list page, in one short attempt (a few seconds at most,
        not the retry budget of a sync); the connection form's Test button and add-customer."""
        try:
            credentials = self.credentials
            probe = type(self)(self.zuora_conn_id, token_store=ProcessTokenStore())
            probe._credentials = dataclasses.replace(
                credentials,
                options=dataclasses.replace(
                    credentials.options,
                    max_attempts=1,
                    max_retry_time=0,
                    connect_timeout=min(credentials.options.connect_timeout, 3.0),
                    read_timeout=min(credentials.options.read_timeout, 5.0),
                ),
            )
            probe._request_json("GET", "/workflows", params={"page": 1, "page_length": 1})
        except ZuoraError as exc:
            return False, str(exc)
        return True, (
            f"Connected to {credentials.base_url} ({credentials.environment}, "
            f"{credentials.region}); the client can list workflows."
        )

    # -- workflows ----------------------------------------------------------------------

    def list_workflows(self, page_length: int | None = None) -> WorkflowListing:
        """Every workflow of the tenant, page by page; see ``WorkflowListing``."""
        return WorkflowListing(self, page_length or self.credentials.options.page_length)

    def export_workflow(self, workflow_id: int, version: str | None = None) -> dict:
        """The export ``{workflow, tasks, linkages, ...}``; ``ZuoraNotFoundError`` on 404."""
        params = {"version": version} if version else None
        export = self._request_json("GET", f"/workflows/{int(workflow_id)}/export", params=params)
        if not isinstance(export, dict) or not isinstance(export.get("workflow"), dict):
            raise ZuoraMalformedResponseError(
                f"export of workflow {workflow_id} has no 'workflow' object",
                conn_id=self.zuora_conn_id,
                endpoint=f"/workflows/{workflow_id}/export",
            )
        return export

    def export_workflows(
        self, workflow_ids: Iterable[int]
    ) -> Iterator[tuple[int, dict | None, ZuoraError | None]]:
        """Export many workflows, at most ``max_concurrency`` in flight.

        Yields ``(workflow_id, export, None)`` or ``(workflow_id, None, error)`` as each
        finishes, so one failed export never loses the others. Only a bounded window of
        results is held in memory at once.
        """
        return self._concurrently(self.export_workflow, workflow_ids)

    def export_versions(
        self, versions: Iterable[tuple[int, str]]
    ) -> Iterator[tuple[tuple[int, str], dict | None, ZuoraError | None]]:
        """``export_workflows`` for ``(workflow_id, version)`` pairs: one version each."""
        return self._concurrently(lambda key: self.export_workflow(*key), versions)

    def list_versions(self, workflow_id: int) -> list[dict]:
        """Every version of a workflow (``GET /workflows/{id}/versions``), as Zuora lists them."""
        endpoint = f"/workflows/{int(workflow_id)}/versions"
        body = self._request_json("GET", endpoint)
        versions = body.get("data") if isinstance(body, dict) else None
        if not isinstance(versions, list):
            raise ZuoraMalformedResponseError(
                "the versions response has no 'data' list", conn_id=self.zuora_conn_id, endpoint=endpoint
            )
        return versions

    def list_versions_of(
        self, workflow_ids: Iterable[int]
    ) -> Iterator[tuple[int, list[dict] | None, ZuoraError | None]]:
        """``list_versions`` of many workflows, concurrently as ``export_workflows``."""
        return self._concurrently(self.list_versions, workflow_ids)

    def task_usage(self, start: date, end: date) -> dict[date, int]:
        """The tasks the whole tenant ran each day from ``start`` to ``end`` (both included;
        ``GET /workflows/metrics.json?metrics=taskCount``), as Zuora answers: a day it leaves
        out is not in the dict. A 403 (no access) is a ``ZuoraAuthError``, a 404 (an older
        tenant) a ``ZuoraNotFoundError``, an answer not of the documented shape a
        ``ZuoraMalformedResponseError`` saying what is wrong."""
        endpoint = "/workflows/metrics.json"
        params = {"startDate": start.isoformat(), "endDate": end.isoformat(), "metrics": "taskCount"}
        body = self._request_json("GET", endpoint, params=params)
        try:
            return _usage_of(body)
        except ValueError as exc:
            raise ZuoraMalformedResponseError(
                f"the task usage answer is malformed: {exc}", conn_id=self.zuora_conn_id, endpoint=endpoint
            ) from None

    def import_workflow(self, export: dict, *, activate: bool, idempotency_key: str) -> dict:
        """``POST /workflows/import``: a new workflow from an export; returns Zuora's answer.
        Needs the 'Workflow Manage Access' permission."""
        return self._request_json(
            "POST",
            "/workflows/import",
            params={"activate": _flag(activate)},
            body=export,
            headers={"Idempotency-Key": idempotency_key},
        )

    def import_version(
        self, workflow_id: int, export: dict, *, version: str, activate: bool, idempotency_key: str
    ) -> dict:
        """``POST /workflows/{id}/versions/import``: a new version (numbered above every
        existing one) of a workflow from an export. Needs 'Workflow Manage Access'."""
        return self._request_json(
            "POST",
            f"/workflows/{int(workflow_id)}/versions/import",
            params={"version": version, "activate": _flag(activate)},
            body=export,
            headers={"Idempotency-Key": idempotency_key},
        )

    def _concurrently(
        self, call: Callable[[Any], Any], keys: Iterable[Any]
    ) -> Iterator[tuple[Any, Any, ZuoraError | None]]:
        limit = self.credentials.options.max_concurrency
        keys = iter(keys)
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="zuora-export") as pool:
            running = {}
            while True:
                for key in keys:
                    running[pool.submit(call, key)] = key
                    if len(running) >= limit:
                        break
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key = running.pop(future)
                    try:
                        yield key, future.result(), None
                    except ZuoraError as exc:
                        yield key, None, exc

    # -- HTTP ---------------------------------------------------------------------------

    def _request_json(
        self,
        method: str,
        endpoint: str,
        params: dict | None = None,
        *,
        body: Any = None,
        headers: dict | None = None,
    ) -> Any:
        """``method`` ``endpoint`` (a path under the base URL) with token, retries and error
        mapping; returns the decoded JSON body. A POST (an import: a write into the tenant) is
        retried only when Zuora surely did not perform it (``surely_not_performed``), even with
        an Idempotency-Key: how long Zuora keeps keys is unknown, and an answer lost to a
        timeout, a reset or a 5xx is raised for the caller to settle by reading Zuora."""
        url = self.credentials.base_url + endpoint
        options = self.credentials.options

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, ZuoraTransientError):
                return False
            return method == "GET" or surely_not_performed(exc)

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            wait=self._wait,
            stop=stop_after_attempt(options.max_attempts) | stop_after_delay(options.max_retry_time),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                response = self._authorized(method, url, endpoint, params, body, headers)
                return self._decode(response, endpoint)

    def _authorized(
        self, method: str, url: str, endpoint: str, params: dict | None, body: Any, headers: dict | None
    ) -> requests.Response:
        # a cached token refused: re-minted once (ZuoraTokenAuth)
        response = self._send(url, endpoint, params, method=method, body=body, headers=headers)
        if response.status_code == 401:
            raise ZuoraAuthError(
                "Zuora refused a freshly minted token: the client credentials were revoked, or the "
                f"OAuth client's user lacks the '{_permission(method)}' permission",
                **self._where(endpoint, response),
            )
        self._raise_for_status(response, endpoint, method)
        return response

    def _send(
        self,
        url: str,
        endpoint: str,
        params: dict | None,
        *,
        method: str = "GET",
        body: Any = None,
        headers: dict | None = None,
    ) -> requests.Response:
        self._pace()
        options = self.credentials.options
        with self._lock:
            self.stats["requests"] += 1
        try:
            response = self.get_conn().request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=(options.connect_timeout, options.read_timeout),
            )
        except requests.Timeout as exc:
            self._count("timeouts")
            timed_out: type[ZuoraTransientError] = (
                ZuoraNotSentError if isinstance(exc, requests.ConnectTimeout) else ZuoraTimeoutError
            )
            raise timed_out(
                f"no answer within the timeout ({type(exc).__name__})",
                conn_id=self.zuora_conn_id,
                endpoint=endpoint,
            ) from None
        except requests.RequestException as exc:
            self._count("connection_errors")
            failed = ZuoraNotSentError if _never_connected(exc) else ZuoraTransientError
            raise failed(
                f"connection failed ({type(exc).__name__}); check the base URL and the network",
                conn_id=self.zuora_conn_id,
                endpoint=endpoint,
            ) from None
        self._note_rate_limit(response)
        return response

    def _mint(self) -> Token:
        """POST /oauth/token with the client credentials (form-encoded).

        Runs under the token cache's lock from inside ``_request_json``, whose retries also
        cover this call: one retry layer, not two.
        """
        credentials = self.credentials
        endpoint = "/oauth/token"
        options = credentials.options
        self._count("requests")
        try:
            response = self.get_conn().post(
                credentials.base_url + endpoint,
                auth=_no_auth,
                data={
                    "client_id": credentials.client_id,
                    "client_secret": credentials.client_secret,
                    "grant_type": "client_credentials",
                },
                timeout=(options.connect_timeout, options.read_timeout),
            )
        except requests.Timeout:
            raise ZuoraTimeoutError(
                "no answer from the token endpoint within the timeout",
                conn_id=self.zuora_conn_id,
                endpoint=endpoint,
            ) from None
        except requests.RequestException as exc:
            raise ZuoraTransientError(
                f"cannot reach the token endpoint ({type(exc).__name__}); check the base URL and the network",
                conn_id=self.zuora_conn_id,
                endpoint=endpoint,
            ) from None
        if response.status_code in (400, 401, 403):
            raise ZuoraAuthError(
                f"Zuora refused the client credentials ({_error_text(response)}): check the client "
                f"id and secret, and that they belong to {credentials.base_url} (each data center "
                "and sandbox has its own)",
                **self._where(endpoint, response),
            )
        self._raise_for_status(response, endpoint)
        body = self._decode(response, endpoint)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ZuoraMalformedResponseError(
                "the token response has no access_token", **self._where(endpoint, response)
            )
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._count("token_mints")
        _mask(body["access_token"])
        return Token(body["access_token"], time.time() + lifetime, lifetime)

    def _token_cache(self) -> TokenCache:
        if self._tokens is None:
            credentials = self.credentials
            self._tokens = TokenCache(
                credentials.fingerprint,
                credentials.client_secret,
                self._mint,
                refresh_margin=credentials.options.token_refresh_margin,
                store=self._token_store,
            )
        return self._tokens

    # -- responses, errors, rate limits ---------------------------------------------------

    def _raise_for_status(self, response: requests.Response, endpoint: str, method: str = "GET") -> None:
        status = response.status_code
        if status < 400:
            return
        where = self._where(endpoint, response)
        text = _error_text(response)
        if status == 429:
            self._count("rate_limited")
            raise ZuoraRateLimitError(
                f"rate limited by Zuora: {text}", retry_after=_retry_after(response), **where
            )
        if status >= 500:
            self._count("server_errors")
            raise ZuoraTransientError(f"Zuora server error: {text}", **where)
        if status == 403:
            raise ZuoraAuthError(
                f"permission denied ({text}): give the OAuth client's user the "
                f"'{_permission(method)}' permission",
                **where,
            )
        if status == 404:
            raise ZuoraNotFoundError(f"not found: {text}", **where)
        raise ZuoraClientError(f"request rejected: {text}", **where)

    def _decode(self, response: requests.Response, endpoint: str) -> Any:
        content = response.content
        with self._lock:
            self.stats["bytes"] += len(content)
        try:
            return json.loads(content)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
            raise ZuoraMalformedResponseError(
                f"the response is {reason} ({len(content)} bytes)", **self._where(endpoint, response)
            ) from None

    def _where(self, endpoint: str, response: requests.Response) -> dict:
        return {
            "conn_id": self.zuora_conn_id,
            "endpoint": endpoint,
            "status": response.status_code,
            "request_id": response.headers.get("Zuora-Request-Id"),
        }

    def _note_rate_limit(self, response: requests.Response) -> None:
        """Slow down before Zuora says 429: spread the remaining budget over the window."""
        remaining = _number(response.headers.get("RateLimit-Remaining"))
        reset = _number(response.headers.get("RateLimit-Reset"))
        low_water = self.credentials.options.rate_limit_low_water
        if remaining is None or reset is None or remaining >= low_water or response.status_code == 429:
            return
        delay = min(reset / (remaining + 1), self.credentials.options.max_retry_wait)
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + delay)

    def _pace(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            self._count("paced")
            time.sleep(delay)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        cap = self.credentials.options.max_retry_wait
        if isinstance(error, ZuoraRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, cap)
        return wait_random_exponential(multiplier=0.5, max=min(30.0, cap))(state)

    def _before_sleep(self, state: RetryCallState) -> None:
        self._count("retries")
        error = state.outcome.exception() if state.outcome else None
        self.log.warning(
            "Zuora call failed, retrying in %.1fs (attempt %d): %s",
            state.next_action.sleep if state.next_action else 0.0,
            state.attempt_number,
            error,
        )

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1


def surely_not_performed(error: BaseException) -> bool:
    """True when Zuora surely did not perform the request that raised ``error``: Zuora refused
    it (a 4xx: 429, 400, 401, 403, 404, 409...), the connection was never opened, the token
    call before it failed, or the connection is misconfigured. False for a timeout, a reset, a
    5xx or an unreadable answer: each may come after Zuora performed it."""
    if isinstance(error, (ZuoraNotSentError, ZuoraConfigError)):
        return True
    if not isinstance(error, ZuoraError):
        return False
    if error.endpoint == "/oauth/token":
        return True
    if isinstance(error, ZuoraMalformedResponseError):
        return False
    return error.status is not None and 400 <= error.status < 500


def _never_connected(error: requests.RequestException) -> bool:
    """A connection error raised before any byte was sent: refused, or the host unknown."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class ZuoraTokenAuth(requests.auth.AuthBase):
    """Bearer-token auth for a ``requests`` session, from a ``TokenCache``.

    Each request gets the cached token (minted when none is usable). When Zuora answers 401
    to a cached token (revoked, or expired early), the token is dropped, a new one minted and
    the request sent once more; a 401 to a freshly minted token is returned as it is.
    """

    def __init__(self, tokens: TokenCache, on_resend: Callable[[], None] = lambda: None):
        self.tokens = tokens
        self.on_resend = on_resend

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token, fresh = self.tokens.get()
        request.headers["Authorization"] = f"Bearer {token.value}"
        if not fresh:
            request.register_hook("response", functools.partial(self._resend_on_401, token))
        return request

    def _resend_on_401(self, token: Token, response: requests.Response, **kwargs) -> requests.Response:
        if response.status_code != 401:
            return response
        self.tokens.invalidate(token)
        fresh, _ = self.tokens.get()
        response.content  # noqa: B018  read the body so the connection can be reused
        response.close()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {fresh.value}"
        retry.hooks["response"] = []
        self.on_resend()
        resent = response.connection.send(retry, **kwargs)
        resent.history.append(response)
        resent.request = retry
        return resent


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """For the token request itself: it carries the client credentials, not a token."""
    return request


class WorkflowListing:
    """Iterates over every workflow of a tenant, following ``pagination.next_page``.

    ``complete`` becomes True only when the last page was reached, so a caller may soft-delete
    what is missing only then. Guards against pagination that never ends or repeats a page.
    """

    def __init__(self, hook: ZuoraHook, page_length: int):
        self.hook = hook
        self.page_length = page_length
        self.complete = False
        self.pages = 0

    def __iter__(self) -> Iterator[dict]:
        hook = self.hook
        max_pages = hook.credentials.options.max_pages
        page: int = 1
        seen_pages: set[int] = set()
        seen_ids: set[Any] = set()
        while True:
            if page in seen_pages or len(seen_pages) >= max_pages:
                raise ZuoraMalformedResponseError(
                    f"pagination does not end (page {page} after {len(seen_pages)} pages)",
                    conn_id=hook.zuora_conn_id,
                    endpoint="/workflows",
                )
            seen_pages.add(page)
            body = hook._request_json(
                "GET", "/workflows", params={"page": page, "page_length": self.page_length}
            )
            items, next_page = _page_of(body, hook.zuora_conn_id)
            self.pages += 1
            hook._count("pages")
            ids = {item.get("id") for item in items if isinstance(item, dict)}
            if items and ids <= seen_ids and None not in ids:
                raise ZuoraMalformedResponseError(
                    f"page {page} repeats workflows already listed; pagination is broken",
                    conn_id=hook.zuora_conn_id,
                    endpoint="/workflows",
                )
            seen_ids |= ids
            yield from items
            if not items or next_page is None:
                self.complete = True
                return
            page = next_page


def _page_of(body: Any, conn_id: str) -> tuple[list, int | None]:
    """The items of one list page and the number of the next page (None on the last)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ZuoraMalformedResponseError(
            "the workflow list has no 'data' array", conn_id=conn_id, endpoint="/workflows"
        )
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        pagination = {}
    next_url = pagination.get("next_page")
    if not next_url:
        return body["data"], None
    parts = urlsplit(str(next_url))
    page = parse_qs(parts.query).get("page", [None])[0]
    if parts.path.rstrip("/") != "/workflows" or page is None or not page.isdigit():
        raise ZuoraMalformedResponseError(
            f"unexpected next_page {next_url!r}", conn_id=conn_id, endpoint="/workflows"
        )
    return body["data"], int(page)


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _usage_of(body: Any) -> dict[date, int]:
    """``{"metrics": [{"date": "YYYY-MM-DD", "values": {"taskCount": N}}, ...]}`` as days ->
    tasks; ValueError naming the first entry that is not of that shape."""
    entries = body.get("metrics") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise ValueError("no 'metrics' list")
    days: dict[date, int] = {}
    for number, entry in enumerate(entries):
        text = entry.get("date") if isinstance(entry, dict) else None
        values = entry.get("values") if isinstance(entry, dict) else None
        count = values.get("taskCount") if isinstance(values, dict) else None
        try:
            day = date.fromisoformat(text) if isinstance(text, str) and _DAY.fullmatch(text) else None
        except ValueError:
            day = None
        if day is None:
            raise ValueError(f"metrics[{number}] has no 'date' of the form YYYY-MM-DD: {_excerpt(entry)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(
                f"metrics[{number}] ({text}) has no whole 'values.taskCount' of at least 0: {_excerpt(entry)}"
            )
        if day in days:
            raise ValueError(f"metrics[{number}]: {text} is answered twice")
        days[day] = count
    return days


def _excerpt(value: Any) -> str:
    return redact_text(json.dumps(value, default=str))[:120]


def _error_text(response: requests.Response) -> str:
    """Zuora's own error message, whatever the envelope (reference §5.4), with any secret it
    repeats (a callout URL's credentials, a token) redacted: it goes into exceptions and logs."""
    return redact_text(_zuora_message(response))


def _zuora_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason or "no message"
    if isinstance(body, dict):
        for key in ("errors", "Errors", "reasons"):
            entries = body.get(key)
            if isinstance(entries, list) and entries:
                first = entries[0]
                if isinstance(first, dict):
                    text = first.get("title") or first.get("message") or first.get("Message")
                    code = first.get("code") or first.get("Code")
                    return f"{text} (code {code})" if code else str(text)
                return str(first)
        for key in ("message", "error_description", "error"):
            if body.get(key):
                return str(body[key])
    return json.dumps(body)[:200]


def _permission(method: str) -> str:
    """The Zuora permission a Workflow API call needs: reading, or creating (imports)."""
    return "Workflow View Access" if method == "GET" else "Workflow Manage Access"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _mask(secret: str) -> None:
    """Have Airflow redact ``secret`` from every log line of this process and its supervisor."""
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


def _retry_after(response: requests.Response) -> float | None:
    for header in ("Retry-After", "RateLimit-Reset"):
        value = _number(response.headers.get(header))
        if value is not None:
            return max(value, 0.0)
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
