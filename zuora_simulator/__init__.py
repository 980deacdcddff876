"""A local, faithful simulator of the Zuora Workflow REST API (see README.md).

Start it with ``python -m zuora_simulator --port P [--tenants FILE | --demo]`` or, from
Python, ``with running_simulator() as sim: ...``.
"""

from .client import AdminClient, Simulator, running_simulator
from .data import SECRET_MARKER

__all__ = ["AdminClient", "Simulator", "running_simulator", "SECRET_MARKER"]
