"""Typed errors for everything that talks to Zuora.

Every error says which connection, endpoint, HTTP status and Zuora-Request-Id it is about
(never a secret or a token) and whether it is ``transient``: worth retrying later (rate
limits, server and network trouble) or not (bad credentials, missing permission, bad data),
which the DAG's retry policy uses.
"""

from __future__ import annotations


class ZuoraError(Exception):
    """Base class; ``transient`` tells Airflow whether a later retry may succeed."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        conn_id: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ):
        self.message = message
        self.conn_id = conn_id
        self.endpoint = endpoint
        self.status = status
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [
            f"{name}={value}"
            for name, value in (
                ("connection", self.conn_id),
                ("endpoint", self.endpoint),
                ("status", self.status),
                ("Zuora-Request-Id", self.request_id),
            )
            if value is not None
        ]
        return f"{self.message} [{', '.join(where)}]" if where else self.message

    def __reduce__(self):
        # Keep the keyword arguments when the error crosses a process boundary.
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls, message, state):
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, str(error))
    return error


class ZuoraConfigError(ZuoraError):
    """The Airflow connection is unusable as configured (missing field, bad URL, ...)."""


class ZuoraAuthError(ZuoraError):
    """Credentials refused, or the client lacks the Workflow permission."""


class ZuoraNotFoundError(ZuoraError):
    """The workflow (or version) does not exist."""


class ZuoraClientError(ZuoraError):
    """Any other 4xx: the request itself is wrong."""


class ZuoraMalformedResponseError(ZuoraError):
    """Zuora answered, but not with the JSON shape expected (or pagination went wrong)."""


class ZuoraTransientError(ZuoraError):
    """Server errors (5xx), connection failures and timeouts."""

    transient = True


class ZuoraNotSentError(ZuoraTransientError):
    """The connection to Zuora could not be opened (refused, unknown host, no answer to the
    connect): the request was never sent, so Zuora surely did not perform it."""


class ZuoraTimeoutError(ZuoraTransientError):
    """No answer within the configured connect or read timeout."""


class ZuoraRateLimitError(ZuoraTransientError):
    """HTTP 429: the tenant's rate or concurrency limit was hit."""

    def __init__(self, message: str, *, retry_after: float | None = None, **where):
        self.retry_after = retry_after
        super().__init__(message, **where)
