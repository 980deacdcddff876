"""One helper: run a block as one committed transaction on a psycopg 3 connection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def committing(conn) -> Iterator[None]:
    """Commit the block's work at the end, roll it back on any error.

    Works for connections in autocommit mode (an explicit transaction block) and for the
    default mode (``PostgresHook.get_conn()``), where the block's statements share the
    connection's implicit transaction.
    """
    if conn.autocommit:
        with conn.transaction():
            yield
        return
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
