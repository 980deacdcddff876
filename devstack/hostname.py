"""``[core] hostname_callable`` of the local cluster: each worker's own name (``ZWS_HOSTNAME``).

A module of its own, importing nothing heavy: Airflow imports it in every task process (a
py-spy profile of a cluster run found ``devstack.cluster``, with requests and the demo,
costing each task process about 70 ms just to be imported for this function).
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("ZWS_HOSTNAME") or socket.getfqdn()
