"""``ZuoraAlertNotifier``: a task failure alert through the ``zuora_alerts`` connection.

    @dag(default_args={"on_failure_callback": ZuoraAlertNotifier()})

The provider registers it here, where Airflow's providers keep their notifiers; it is defined
in ``zuora.alerts``, beside what it sends, so that module imports nothing of this one (and DAG
files that import it from ``zuora.alerts`` keep working).
"""

from zuora.alerts import ZuoraAlertNotifier

__all__ = ["ZuoraAlertNotifier"]
