"""How the sync page reads the warehouse, so that a busy page never takes what the sync needs.

    await run(work, *args)     ``work(*args)`` in a worker thread, at most ``MAX_READERS`` at once
    with connection() as conn  one connection, in one read-only transaction (``queries.read_only``)

Each request of the page is one call of ``run``, which opens at most one connection at a time:
so this api-server process holds at most ``MAX_READERS`` warehouse connections, and nothing
while nobody looks. Requests beyond that wait in the event loop, holding neither a thread of
the api-server nor a connection.

The connection is the Airflow connection ``zuora_warehouse_reader`` (a login that may only read
the zuora schema, e.g. made by include/sql/reader_login.sql) when Airflow has it; otherwise
``zuora_warehouse``, the sync's own, with a warning (once per process). Either way every read
is a READ ONLY transaction.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
from airflow.exceptions import AirflowNotFoundException

from zuora import settings
from zuora.ui import queries
from zuora.warehouse.connection import warehouse_connection

log = logging.getLogger(__name__)

MAX_READERS = 4  # requests reading at once, so warehouse connections, per api-server process
_readers = anyio.CapacityLimiter(MAX_READERS)


async def run(work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` in a worker thread once one of the ``MAX_READERS`` places is free."""
    return await anyio.to_thread.run_sync(work, *args, limiter=_readers)


@contextlib.contextmanager
def connection() -> Iterator:
    """A warehouse connection in one read-only transaction (rolled back and closed after)."""
    with contextlib.ExitStack() as stack:
        try:
            conn = stack.enter_context(warehouse_connection(settings.WAREHOUSE_READER_CONN_ID))
        except AirflowNotFoundException:
            _warn_without_a_reader()
            conn = stack.enter_context(warehouse_connection(settings.WAREHOUSE_CONN_ID))
        yield stack.enter_context(queries.read_only(conn))


@functools.cache
def _warn_without_a_reader() -> None:
    log.warning(
        "the Zuora sync page reads the warehouse with the sync's own connection %s (in read-only "
        "transactions): add the Airflow connection %s, a login that may only read the zuora "
        "schema (docs/operating.md, 'The Zuora sync page')",
        settings.WAREHOUSE_CONN_ID,
        settings.WAREHOUSE_READER_CONN_ID,
    )
